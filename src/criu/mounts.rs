//! A mount namespace as `mountpoints-<mnt_ns_id>.img` records it, decoded
//! into the model's [`Mount`]s. CRIU writes the image for a
//! process in a mount namespace of its own (every container); a process
//! that shared the mount namespace of the host CRIU ran on has none.

use anyhow::Result;

use super::image::Image;
use super::magic;
use super::store::ImageStore;
use crate::model::mounts::Mount;
use crate::proto;

/// MS_RDONLY in a mount's flags.
const MS_RDONLY: u32 = 1;

fn fstype_name(e: &proto::MntEntry) -> String {
    let name = match e.fstype {
        0 => "unsupported",
        1 => "proc",
        2 => "sysfs",
        3 => "devtmpfs",
        4 => "binfmt_misc",
        5 => "tmpfs",
        6 => "devpts",
        7 => "simfs",
        8 => "pstore",
        9 => "securityfs",
        10 => "fusectl",
        11 => "debugfs",
        12 => "cgroup",
        13 => "aufs",
        14 => "mqueue",
        15 => "fuse",
        16 => {
            return e
                .fsname
                .as_ref()
                .map_or("auto".into(), |n| String::from_utf8_lossy(n).into_owned())
        }
        17 => "overlay",
        18 => "autofs",
        19 => "tracefs",
        23 => "cgroup2",
        n => return format!("type {n}"),
    };
    name.into()
}

/// The mounts of mount namespace `ns` in mount-tree order (parents before
/// their children, as mountinfo lists them), or `None` if the checkpoint
/// has no image for it.
pub fn load(store: &dyn ImageStore, ns: u32) -> Result<Option<Vec<Mount>>> {
    let name = format!("mountpoints-{ns}.img");
    let Some(data) = store.read(&name)? else {
        return Ok(None);
    };
    let mut img = Image::parse(format!("{}/{name}", store.location()), data, magic::MNTS)?;
    let mut mounts = Vec::new();
    while let Some(e) = img.entry::<proto::MntEntry>()? {
        mounts.push(Mount {
            id: e.mnt_id,
            parent: e.parent_mnt_id,
            fstype: fstype_name(&e),
            mountpoint: e.mountpoint.clone(),
            source: e.source.clone(),
            root: e.root.clone(),
            options: e.options.clone(),
            read_only: e.flags & MS_RDONLY != 0,
            external: e.ext_key.clone().filter(|k| !k.is_empty()),
            shared: e.shared_id.unwrap_or(0),
            master: e.master_id.unwrap_or(0),
        });
    }
    // CRIU writes children before their parents; put the tree in the order
    // mountinfo has it: each mount after the one it is mounted on.
    Ok(Some(tree_order(mounts)))
}

/// `mounts` with every mount after its parent (depth first, siblings in
/// mountpoint order); mounts whose parent is missing (the namespace's
/// root, or a broken image) start the walk.
fn tree_order(mut mounts: Vec<Mount>) -> Vec<Mount> {
    mounts.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint).then(a.id.cmp(&b.id)));
    let ids: std::collections::HashSet<u32> = mounts.iter().map(|m| m.id).collect();
    let mut children: std::collections::HashMap<u32, Vec<usize>> = std::collections::HashMap::new();
    for (i, m) in mounts.iter().enumerate() {
        children.entry(m.parent).or_default().push(i);
    }
    let mut out = Vec::with_capacity(mounts.len());
    let mut placed = vec![false; mounts.len()];
    let mut stack: Vec<usize> = (0..mounts.len())
        .filter(|&i| !ids.contains(&mounts[i].parent) || mounts[i].parent == mounts[i].id)
        .rev()
        .collect();
    while let Some(i) = stack.pop() {
        if placed[i] {
            continue;
        }
        placed[i] = true;
        out.push(i);
        if let Some(kids) = children.get(&mounts[i].id) {
            stack.extend(kids.iter().rev().filter(|&&j| !placed[j]));
        }
    }
    // A cycle leaves mounts unplaced: keep them, at the end.
    out.extend((0..mounts.len()).filter(|&i| !placed[i]));
    let mut slots: Vec<Option<Mount>> = mounts.into_iter().map(Some).collect();
    out.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u32, parent: u32, at: &str) -> Mount {
        Mount {
            id,
            parent,
            mountpoint: at.as_bytes().to_vec(),
            fstype: "tmpfs".into(),
            source: Vec::new(),
            root: b"/".to_vec(),
            options: Vec::new(),
            read_only: false,
            external: None,
            shared: 0,
            master: 0,
        }
    }

    #[test]
    fn mounts_come_parents_first_and_survive_cycles() {
        let order = |v: Vec<Mount>| tree_order(v).iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(
            order(vec![
                m(69, 63, "/tmp"),
                m(68, 66, "/dev/pts"),
                m(66, 63, "/dev"),
                m(63, 42, "/")
            ]),
            [63, 66, 68, 69]
        );
        assert_eq!(order(vec![m(1, 2, "/a"), m(2, 1, "/b")]), [1, 2]);
    }
}
