//! Lists the images of an image container (OCI layout, OCI archive,
//! docker-archive), selects one, and resolves paths in its layered view
//! (see `criu2core::oci`):
//!
//! ```text
//! cargo run --release --example image-files -- IMAGE [--ref NAME:TAG] [--hint NAME]... PATH...
//! ```
//!
//! For each path it prints where its bytes are: in place in the archive or
//! layout, or a private copy out of a compressed layer. It also prints how
//! long indexing took and the process's peak memory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;

use criu2core::oci::{ImageArchive, LayerView, Options, Selector};

/// Resolve paths in a container image's layers.
#[derive(Parser)]
struct Args {
    /// OCI image layout, OCI archive or docker-archive.
    image: PathBuf,
    /// The image to use, when it holds several.
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Names the checkpoint gives its image.
    #[arg(long = "hint")]
    hints: Vec<String>,
    /// Paths to resolve, as a process in the container saw them.
    paths: Vec<String>,
}

/// The process's peak resident memory, from /proc/self/status.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_default()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let opts = Options::default();
    let start = Instant::now();
    let archive = ImageArchive::open(&args.image, &opts)?;
    println!("{} ({})", args.image.display(), archive.format().name());
    for image in archive.images() {
        println!("  {}", image.describe());
    }
    let selected = archive.select(&Selector {
        reference: args.reference,
        hints: args.hints,
        ..Default::default()
    })?;
    println!(
        "selected {} ({:?}; matches the checkpoint's image: {})",
        selected.info().describe(),
        selected.selection(),
        selected.hint_match().unwrap_or("no")
    );
    let view = LayerView::new(selected.layers()?, &opts)?;
    println!(
        "{} layers, {} files, indexed in {:.2} s, peak memory {}",
        view.layer_count(),
        view.files().count(),
        start.elapsed().as_secs_f64(),
        peak_rss()
    );
    for path in &args.paths {
        match view.resolve(path)? {
            None => println!("{}: not in the image", path.escape_debug()),
            Some(file) => {
                let blob = view.materialize(std::slice::from_ref(&file))?.remove(0);
                println!(
                    "{} -> /{} (layer {}): {} bytes at offset {} of {}",
                    path.escape_debug(),
                    file.path().escape_ascii(),
                    file.layer(),
                    blob.len,
                    blob.offset,
                    blob.path.display()
                );
            }
        }
    }
    Ok(())
}
