//! batch's output names: whatever inputs are called and whatever already
//! sits in the output directory, each input gets a single safe name of its
//! own, or none, and the choice does not depend on the inputs' order.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use criu2core::testkit::naming::{
    choose_names, is_safe_component, output_name, InputId, Occupant, MAX_OUTPUT_NAME,
    RESERVED_NAMES,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks what occupies names; then records of
    // (length, bytes), each an input's path below a directory of its own.
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut ids: Vec<InputId> = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..16 {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let len = usize::from(len).min(tail.len());
        let raw = &tail[..len];
        rest = &tail[len..];
        let name = output_name(Path::new(OsStr::from_bytes(raw)));
        assert!(is_safe_component(&name), "{raw:?} -> {name:?}");
        assert!(
            !name.starts_with('.') && name.len() <= MAX_OUTPUT_NAME,
            "{name:?}"
        );
        assert!(
            !RESERVED_NAMES.iter().any(|r| name.eq_ignore_ascii_case(r)),
            "{name:?}"
        );
        // Often the same file name in another directory: namesakes.
        let dir = if mode & 1 == 0 { i % 3 } else { i };
        let path = Path::new("/nonexistent-fuzz")
            .join(dir.to_string())
            .join(OsStr::from_bytes(raw));
        let id = InputId::new(&path);
        if seen.insert(id.sha256.clone()) {
            ids.push(id);
        }
    }
    // Occupants: a name is free, something else's, or some input's.
    let occupant = |name: &str| -> Occupant {
        let h = name.bytes().fold(u32::from(mode), |h, b| {
            h.wrapping_mul(31).wrapping_add(u32::from(b))
        });
        match (h >> 1) % 5 {
            0 | 1 => Occupant::Free,
            2 => Occupant::Other,
            k => ids
                .get((h >> 4) as usize % ids.len().max(1))
                .filter(|_| k == 3)
                .map_or(Occupant::Other, |id| Occupant::Input(id.sha256.clone())),
        }
    };
    let refs: Vec<&InputId> = ids.iter().collect();
    let names = choose_names(&refs, &mut |n| occupant(n));
    let mut used = HashSet::new();
    let mut by_input = HashMap::new();
    for (id, name) in ids.iter().zip(&names) {
        let Some(name) = name else { continue };
        assert!(is_safe_component(name), "{name:?}");
        assert!(used.insert(name.clone()), "{name} given twice");
        assert!(
            name == &id.base
                || name
                    .strip_prefix(&id.base)
                    .is_some_and(|s| s.starts_with('-'))
        );
        match occupant(name) {
            Occupant::Free => {}
            Occupant::Input(sha) => assert_eq!(sha, id.sha256, "{name} belongs to another input"),
            Occupant::Other => panic!("{name} is occupied"),
        }
        by_input.insert(id.sha256.clone(), name.clone());
    }
    // The same inputs the other way round: the same names.
    let rev: Vec<&InputId> = ids.iter().rev().collect();
    let again = choose_names(&rev, &mut |n| occupant(n));
    for (id, name) in rev.iter().zip(&again) {
        assert_eq!(
            name.as_ref(),
            by_input.get(&id.sha256),
            "order changed {}'s name",
            id.base
        );
    }
});
