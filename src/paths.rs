//! The one path policy for names that come from inputs: archive and
//! image-archive members, rootfs-diff keys, layer paths and the paths a
//! process mapped. A path is made relative and clean (`/`, `.` and empty
//! components vanish, the rest joined by `/`; the root is empty), and each
//! caller names what `..` does: [`DotDot::Reject`] or [`DotDot::Clamp`].
//! Nothing here touches a filesystem.

/// What a `..` component of a path does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DotDot {
    /// The path is refused: a member name, or the key a member is stored
    /// under, never has one (checkpoint archives, image archives, rootfs
    /// diffs, the paths asked of them and of a sysroot).
    Reject,
    /// It goes up one component, stopping at the root, as the kernel
    /// resolves `/..` (layer members and the paths asked of a layer view).
    Clamp,
}

/// `path` made relative and clean as the module says; `None` for a path
/// with `..` under [`DotDot::Reject`].
pub(crate) fn clean(path: &[u8], dotdot: DotDot) -> Option<Vec<u8>> {
    let mut key = Vec::with_capacity(path.len());
    for c in components(path) {
        if c != b".." {
            push_component(&mut key, c);
        } else if dotdot == DotDot::Clamp {
            pop_component(&mut key);
        } else {
            return None;
        }
    }
    Some(key)
}

/// The components of `path` other than empty ones and `.`.
pub(crate) fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// Appends the component `c` to the clean path `key`.
pub(crate) fn push_component(key: &mut Vec<u8>, c: &[u8]) {
    if !key.is_empty() {
        key.push(b'/');
    }
    key.extend_from_slice(c);
}

/// Removes the last component of the clean path `key` (none from the root).
pub(crate) fn pop_component(key: &mut Vec<u8>) {
    let cut = key.iter().rposition(|&b| b == b'/').unwrap_or(0);
    key.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_is_refused_or_clamped_at_the_root() {
        let both = |p: &[u8]| (clean(p, DotDot::Reject), clean(p, DotDot::Clamp));
        // Without `..`, the two agree.
        for (p, want) in [
            (
                &b"./checkpoint//pstree.img"[..],
                &b"checkpoint/pstree.img"[..],
            ),
            (b"/etc/./passwd/", b"etc/passwd"),
            (b"", b""),
            (b"/", b""),
            (b"./", b""),
        ] {
            assert_eq!(both(p), (Some(want.to_vec()), Some(want.to_vec())), "{p:?}");
        }
        // With it: refused, or one up, never above the root.
        for (p, clamped) in [
            (&b"checkpoint/../../x"[..], &b"x"[..]),
            (b"a/b/../c", b"a/c"),
            (b"/./a//b/../../../c/", b"c"),
            (b"..", b""),
            (b"a/..", b""),
        ] {
            assert_eq!(both(p), (None, Some(clamped.to_vec())), "{p:?}");
        }
        // A name that only starts with dots is a name.
        assert_eq!(clean(b"..a/.b", DotDot::Reject).unwrap(), b"..a/.b");
    }
}
