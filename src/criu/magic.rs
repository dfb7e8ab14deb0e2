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
/// `ghost-file-<id in hex>.img`
pub const GHOST_FILE: u32 = 0x5258_3605;
/// `ipcns-shm-<id>.img`
pub const IPCNS_SHM: u32 = 0x4628_3044;
/// stats-dump / stats-restore
pub const STATS: u32 = 0x5709_3306;

/// `fdinfo-<files_id>.img`
pub const FDINFO: u32 = 0x5621_3732;
/// `fs-<pid>.img`
pub const FS: u32 = 0x5140_3912;
/// `mountpoints-<mnt_ns_id>.img`
pub const MNTS: u32 = 0x5556_3928;
/// `tcp-stream-<ino>.img`
pub const TCP_STREAM: u32 = 0x5146_5506;
/// sk-queues.img
pub const SK_QUEUES: u32 = 0x5626_4026;
/// pipes-data.img
pub const PIPES_DATA: u32 = 0x5645_3709;
/// fifo-data.img
pub const FIFO_DATA: u32 = 0x5933_3054;
/// tty-info.img
pub const TTY_INFO: u32 = 0x5945_3036;
/// inetsk.img (CRIU before files.img)
pub const INETSK: u32 = 0x5644_3851;
/// unixsk.img (CRIU before files.img)
pub const UNIXSK: u32 = 0x5437_3943;
/// packetsk.img (CRIU before files.img)
pub const PACKETSK: u32 = 0x6045_4618;
/// netlinksk.img (CRIU before files.img)
pub const NETLINK_SK: u32 = 0x5800_5614;
/// pipes.img (CRIU before files.img)
pub const PIPES: u32 = 0x5651_3555;
/// fifo.img (CRIU before files.img)
pub const FIFO: u32 = 0x5836_4939;
/// eventfd.img (CRIU before files.img)
pub const EVENTFD_FILE: u32 = 0x4452_3722;
/// signalfd.img (CRIU before files.img)
pub const SIGNALFD: u32 = 0x5732_3820;
/// timerfd.img (CRIU before files.img)
pub const TIMERFD: u32 = 0x5049_3712;
/// tty.img (CRIU before files.img)
pub const TTY_FILES: u32 = 0x5943_3025;
/// ns-files.img (CRIU before files.img)
pub const NS_FILES: u32 = 0x6139_4011;

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
        GHOST_FILE => "ghost-file",
        IPCNS_SHM => "ipcns-shm",
        STATS => "stats",
        FDINFO => "fdinfo",
        FS => "fs",
        MNTS => "mountpoints",
        TCP_STREAM => "tcp-stream",
        SK_QUEUES => "sk-queues",
        PIPES_DATA => "pipes-data",
        FIFO_DATA => "fifo-data",
        TTY_INFO => "tty-info",
        INETSK => "inetsk",
        UNIXSK => "unixsk",
        PACKETSK => "packetsk",
        NETLINK_SK => "netlinksk",
        PIPES => "pipes",
        FIFO => "fifo",
        EVENTFD_FILE => "eventfd",
        SIGNALFD => "signalfd",
        TIMERFD => "timerfd",
        TTY_FILES => "tty",
        NS_FILES => "ns-files",
        _ => "unknown image type",
    }
}
