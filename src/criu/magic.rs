//! Magic numbers that open CRIU image files (facts of CRIU's image format).

/// First word of most images written by CRIU 1.x and later.
pub const IMG_COMMON: u32 = 0x5456_4319;
/// First word of images that describe the dump rather than a task (stats).
pub const IMG_SERVICE: u32 = 0x5510_5940;

/// inventory.img (written without the common first word).
pub const INVENTORY: u32 = 0x5831_3116;
/// pstree.img
pub const PSTREE: u32 = 0x5027_3030;
/// `pagemap-<pid>.img` and `pagemap-shmem-<id>.img`
pub const PAGEMAP: u32 = 0x5608_4025;
/// `core-<tid>.img`
pub const CORE: u32 = 0x5505_3847;
/// `ids-<pid>.img`
pub const IDS: u32 = 0x5443_2030;
/// `mm-<pid>.img`
pub const MM: u32 = 0x5749_2820;
/// files.img
pub const FILES: u32 = 0x5630_3138;
/// reg-files.img (images from CRIU releases before files.img)
pub const REG_FILES: u32 = 0x5036_3636;
/// memfd.img
pub const MEMFD_INODE: u32 = 0x4845_3499;
/// remap-fpath.img
pub const REMAP_FPATH: u32 = 0x5913_3954;
/// `ipcns-shm-<id>.img`
pub const IPCNS_SHM: u32 = 0x4628_3044;
/// stats-dump / stats-restore
pub const STATS: u32 = 0x5709_3306;

/// A readable name for a magic number, for error messages.
pub fn name(magic: u32) -> &'static str {
    match magic {
        IMG_COMMON => "common image header",
        IMG_SERVICE => "service image header",
        INVENTORY => "inventory",
        PSTREE => "pstree",
        PAGEMAP => "pagemap",
        CORE => "core",
        IDS => "ids",
        MM => "mm",
        FILES => "files",
        REG_FILES => "reg-files",
        MEMFD_INODE => "memfd",
        REMAP_FPATH => "remap-fpath",
        IPCNS_SHM => "ipcns-shm",
        STATS => "stats",
        _ => "unknown image type",
    }
}
