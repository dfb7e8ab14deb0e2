//! The mounts of a mount namespace, as /proc/PID/mountinfo shows them.

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Mount id (as /proc/PID/mountinfo numbers it).
    pub id: u32,
    /// The id of the mount it is mounted on.
    pub parent: u32,
    /// Where it is mounted.
    pub mountpoint: Vec<u8>,
    /// The filesystem type: "tmpfs", "proc", "overlay", ... ("unsupported"
    /// where the checkpoint recorded none, such as a bind mount of the
    /// host's disk).
    pub fstype: String,
    /// The mount's source (device, or the filesystem's name).
    pub source: Vec<u8>,
    /// Which directory of the filesystem is mounted (`/` for all of it).
    pub root: Vec<u8>,
    /// The superblock's options, as mountinfo shows them.
    pub options: Vec<u8>,
    /// Mounted read-only.
    pub read_only: bool,
    /// The key a container engine gave an external (bind) mount, by which
    /// it is restored (`--external mnt[PATH]:KEY`).
    pub external: Option<Vec<u8>>,
    /// Peer group of a shared mount (0: not shared).
    pub shared: u32,
    /// Peer group it receives propagation from (0: none).
    pub master: u32,
}
