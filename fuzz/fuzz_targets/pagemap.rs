//! Pagemap consistency: a pagemap image followed by ascending lookups; the
//! cursor must answer each or fail cleanly, and what it answers must make
//! sense.
#![no_main]

use criu2core::testkit::decode::{Cursor, ImageReader, PagemapReader};
use criu2core::testkit::magic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(data[0]) << 8 | usize::from(data[1])).min(data.len() - 2);
    let (image, queries) = data[2..].split_at(split);
    let Ok(img) = ImageReader::from_bytes("pagemap-1.img", image.to_vec(), magic::PAGEMAP) else {
        return;
    };
    let Ok(reader) = PagemapReader::new(img, 4096) else {
        return;
    };
    let mut cursor = Cursor::new(reader);
    let mut addr = 0u64;
    for q in queries.chunks_exact(4) {
        addr = addr.saturating_add(u64::from(u32::from_le_bytes(q.try_into().unwrap())) << 8);
        match cursor.find(addr) {
            Ok(Some(r)) => {
                assert!(r.end > addr && r.start < r.end);
                cursor.mark_used();
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = cursor.finish();
});
