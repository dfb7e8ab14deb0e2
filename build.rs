//! Compiles criu2core's own CRIU message definitions (`proto/*.proto`) with
//! protox, a pure-Rust protobuf compiler, so no system `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "core.proto",
        "arch.proto",
        "mm.proto",
        "tree.proto",
        "files.proto",
        "fds.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(descriptors)?;
    Ok(())
}
