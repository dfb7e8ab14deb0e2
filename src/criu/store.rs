//! Where CRIU images come from: a directory of image files, or (through the
//! same trait) anything else that can hand out small images whole and say
//! where large raw page files lie.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::error::{fault, ErrorKind};

use crate::model::Blob;

/// Largest metadata image read into memory (page data is never read whole).
pub const MAX_IMAGE_BYTES: u64 = 512 << 20;

/// A set of CRIU image files.
pub trait ImageStore: Send + Sync {
    /// Where the images are, for messages.
    fn location(&self) -> String;
    /// Names of the files in the store, sorted.
    fn names(&self) -> Result<Vec<String>>;
    /// Reads a metadata image whole, or `None` if the store has no such file.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Locates a raw data file (pages-N.img) without reading it.
    fn blob(&self, name: &str) -> Result<Option<Blob>>;
    /// Opens an image to be read as a stream, with its length, or `None`
    /// if the store has no such file: for images too large to hold whole.
    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + Sync>, u64)>> {
        Ok(self.read(name)?.map(|data| {
            let len = data.len() as u64;
            (
                Box::new(io::Cursor::new(data)) as Box<dyn Read + Send + Sync>,
                len,
            )
        }))
    }
    /// The images of the previous dump of an incremental chain, if any.
    fn parent(&self) -> Result<Option<Arc<dyn ImageStore>>>;
}

/// CRIU images in a directory, as `criu dump -D DIR` leaves them.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Opens an image directory; it must exist and be a directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<DirStore> {
        let dir = dir.as_ref();
        let meta = fs::metadata(dir)
            .with_context(|| format!("{}: cannot open image directory", dir.display()))?;
        if !meta.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
        Ok(DirStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The path of an image, refusing names that would leave the directory,
    /// or `None` if there is no such file. Only regular files are images.
    fn regular_file(&self, name: &str) -> Result<Option<(PathBuf, u64)>> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            bail!("{}: invalid image name {name:?}", self.dir.display());
        }
        let path = self.dir.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot stat", path.display())),
        };
        if !meta.file_type().is_file() {
            bail!("{}: not a regular file", path.display());
        }
        Ok(Some((path, meta.len())))
    }
}

impl ImageStore for DirStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .with_context(|| format!("{}: cannot list", self.dir.display()))?
        {
            let entry = entry.with_context(|| format!("{}: cannot list", self.dir.display()))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some((path, len)) = self.regular_file(name)? else {
            return Ok(None);
        };
        if len > MAX_IMAGE_BYTES {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "{}: {len} bytes is larger than any metadata image should be (limit {MAX_IMAGE_BYTES})",
                    path.display()
                ),
            ));
        }
        let mut data = Vec::with_capacity(len as usize);
        fs::File::open(&path)
            .and_then(|f| f.take(MAX_IMAGE_BYTES + 1).read_to_end(&mut data))
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if data.len() as u64 > MAX_IMAGE_BYTES {
            return Err(crate::error::fault(
                crate::ErrorKind::Limit,
                format!(
                    "{}: grew past {MAX_IMAGE_BYTES} bytes while being read",
                    path.display()
                ),
            ));
        }
        Ok(Some(data))
    }

    fn blob(&self, name: &str) -> Result<Option<Blob>> {
        Ok(self.regular_file(name)?.map(|(path, len)| Blob {
            label: path.display().to_string(),
            path,
            offset: 0,
            len,
            remote: None,
        }))
    }

    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + Sync>, u64)>> {
        let Some((path, len)) = self.regular_file(name)? else {
            return Ok(None);
        };
        let f =
            fs::File::open(&path).with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(Some((Box::new(f.take(len)), len)))
    }

    fn parent(&self) -> Result<Option<Arc<dyn ImageStore>>> {
        let link = self.dir.join("parent");
        match fs::symlink_metadata(&link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("{}: cannot stat", link.display())),
            Ok(_) => {
                let target = fs::canonicalize(&link).with_context(|| {
                    format!("{}: parent images link points nowhere", link.display())
                })?;
                Ok(Some(Arc::new(DirStore::open(target)?)))
            }
        }
    }
}
