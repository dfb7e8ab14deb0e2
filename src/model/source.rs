//! What the model reads page data through, and what it knows of object
//! storage. The model opens nothing itself: whoever builds a
//! [`Process`](super::Process) hands it a [`FileSource`] (the input layer's
//! is `blobio::Files`), and an object in object storage is a
//! [`RemoteObject`] over whatever implements [`RangeRead`].

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use super::Blob;

/// An object whose bytes can be read by range (object storage).
pub(crate) trait RangeRead: Send + Sync {
    /// Its URL, for messages and identity.
    fn url(&self) -> &str;
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// All of its bytes from the start, as one stream (one GET).
    fn stream(&self) -> io::Result<Box<dyn Read + Send>>;
}

/// An object in object storage that holds a blob's bytes.
#[derive(Clone)]
pub struct RemoteObject(pub(crate) Arc<dyn RangeRead>);

impl RemoteObject {
    /// Its URL.
    pub fn url(&self) -> &str {
        self.0.url()
    }
}

impl fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteObject({})", self.url())
    }
}

impl PartialEq for RemoteObject {
    fn eq(&self, other: &Self) -> bool {
        self.url() == other.url()
    }
}

impl Eq for RemoteObject {}

/// A blob's file or object, open for reads at any offset (offsets are the
/// file's, not the blob's).
pub(crate) trait ReadAt {
    /// Fills `buf` with the bytes at `offset`.
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// Opens the files and objects that a process's blobs lie in.
pub(crate) trait FileSource: fmt::Debug + Send + Sync {
    /// Opens the file or object that holds `blob`.
    fn open(&self, blob: &Blob) -> io::Result<Box<dyn ReadAt>>;
}
