//! Object storage in a build without the `object-store` feature: URLs are
//! still told from paths (so `s3://...` is never taken for a directory
//! named `s3:`), and refused. [`Location::parse`] fails for every URL, so
//! no [`Location`] is ever made; its methods fail alike.

use std::io::{self, Write};

use anyhow::{bail, Result};

pub(crate) use crate::blobio::is_url;
use crate::model::RemoteObject;

/// Why object storage cannot be used in this build.
const NO_FEATURE: &str =
    "this criu2core was built without object storage (cargo feature object-store)";

/// A location in object storage: never made in this build.
#[derive(Clone, Debug)]
pub(crate) struct Location(());

/// Metadata of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub size: u64,
    pub stamp: String,
}

/// The version of an object read: never made in this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version(());

/// What a prefix holds, one level down.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub dirs: Vec<String>,
    pub objects: Vec<(String, Meta)>,
    pub bad: Vec<(String, String, String)>,
}

impl Location {
    pub(crate) fn parse(url: &str) -> Result<Location> {
        bail!("{url}: {NO_FEATURE}")
    }
    pub(crate) fn url(&self) -> String {
        String::new()
    }
    pub(crate) fn join(&self, _: &str) -> Location {
        Location(())
    }
    pub(crate) fn read_start(&self, _: u64) -> Result<Vec<u8>> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn head(&self) -> Result<Option<Meta>> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn read_all(&self, _: u64) -> Result<Option<Vec<u8>>> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn read_head(&self, _: u64) -> Result<Vec<u8>> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn put(&self, _: Vec<u8>) -> Result<()> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn read_versioned(&self, _: u64) -> Result<Option<(Vec<u8>, Version)>> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn put_if(&self, _: Vec<u8>, _: Option<&Version>) -> Result<bool> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn delete(&self) -> Result<()> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn list(&self) -> Result<Listing> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn has_objects(&self) -> Result<bool> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn object(&self) -> Result<RemoteObject> {
        bail!(NO_FEATURE)
    }
    pub(crate) fn upload(&self) -> Result<Upload> {
        bail!(NO_FEATURE)
    }
}

/// A multipart upload: never made in this build.
pub(crate) struct Upload(());

impl Upload {
    pub(crate) fn finish(self) -> Result<u64> {
        bail!(NO_FEATURE)
    }
}

impl Write for Upload {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other(NO_FEATURE))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
