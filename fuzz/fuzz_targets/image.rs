//! Image framing and every message decoder: any bytes, taken as each kind
//! of image, must decode or fail cleanly.
#![no_main]

use criu2core::testkit::decode::Image;
use criu2core::testkit::{magic, proto};
use libfuzzer_sys::fuzz_target;

fn all<M: prost::Message + Default>(data: &[u8], m: u32) {
    if let Ok(mut img) = Image::parse("fuzz.img", data.to_vec(), m) {
        while let Ok(Some(_)) = img.entry::<M>() {}
    }
}

fuzz_target!(|data: &[u8]| {
    all::<proto::Inventory>(data, magic::INVENTORY);
    all::<proto::PstreeEntry>(data, magic::PSTREE);
    all::<proto::Core>(data, magic::CORE);
    all::<proto::Mm>(data, magic::MM);
    all::<proto::PagemapEntry>(data, magic::PAGEMAP);
    all::<proto::FileEntry>(data, magic::FILES);
    all::<proto::MemfdInode>(data, magic::MEMFD_INODE);
    all::<proto::RemapFilePath>(data, magic::REMAP_FPATH);
    all::<proto::IpcShm>(data, magic::IPCNS_SHM);
    all::<proto::RegFile>(data, magic::REG_FILES);
});
