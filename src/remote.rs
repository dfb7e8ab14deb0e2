//! Object storage (feature `object-store`): `s3://`, `gs://`, `az://` and
//! `file://` URLs as inputs and as the output directory, through the
//! `object_store` crate.
//!
//! Its API is async; criu2core is not. One small runtime of its own (two
//! worker threads, made on first use) runs every request, and this module
//! waits on it at its edges ([`block_on`]): what the rest of the crate sees
//! is blocking reads and writes. Credentials, region and endpoint come from
//! the environment as each store's builder reads it (for S3 the `AWS_*`
//! variables, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for a plain-HTTP
//! endpoint, web identity and instance metadata), and for S3 from the
//! shared config files' profile (`AWS_PROFILE`) where the variables name no
//! key.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use object_store::list::PaginatedListStore;
use object_store::path::{Path as Key, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

pub(crate) use crate::blobio::is_url;
use crate::model::source::RangeRead;
use crate::model::RemoteObject;

/// Size of each part of a multipart upload.
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one upload in flight at once: with the part being filled, an
/// upload holds at most `(PARTS_IN_FLIGHT + 1) * PART_SIZE` bytes.
pub const PARTS_IN_FLIGHT: usize = 3;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("criu2core-io")
            .enable_all()
            .build()
            .expect("cannot start the object-storage runtime")
    })
}

/// Runs `f` on the object-storage runtime and waits for it.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A location in object storage: an object, or a prefix read as a
/// directory.
#[derive(Clone)]
pub(crate) struct Location {
    store: Arc<dyn ObjectStore>,
    /// The same store's paged listing, where it has one (not `file://`).
    pages: Option<Arc<dyn PaginatedListStore>>,
    /// `scheme://bucket` (`file://` for the local filesystem).
    base: Arc<str>,
    key: Key,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

/// Metadata of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub size: u64,
    /// What changes when the object does: its ETag, version or time.
    pub stamp: String,
}

fn meta(m: &object_store::ObjectMeta) -> Meta {
    let stamp = m
        .e_tag
        .clone()
        .or_else(|| m.version.clone())
        .unwrap_or_else(|| m.last_modified.to_rfc3339());
    Meta {
        size: m.size,
        stamp,
    }
}

/// The version of an object read, for a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    e_tag: Option<String>,
    version: Option<String>,
}

/// What a prefix holds, one level down.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Names of the prefixes below it (its "directories"), sorted.
    pub dirs: Vec<String>,
    /// Names and metadata of its objects, sorted.
    pub objects: Vec<(String, Meta)>,
    /// Keys (objects, and prefixes ending in `/`) right below it that no
    /// key path can be made of (`.`, `..`, an empty segment, control
    /// characters): each whole, as its name below the prefix, and why.
    pub bad: Vec<(String, String, String)>,
}

/// A bucket's client, and its paged listing where it has one.
type Stores = (Arc<dyn ObjectStore>, Option<Arc<dyn PaginatedListStore>>);

/// Keys a listing page asks for at most.
const PAGE_KEYS: usize = 1000;

/// One client per bucket, shared by every location in it.
fn store_for(base: &str, url: &str) -> Result<Stores> {
    static STORES: OnceLock<Mutex<HashMap<String, Stores>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = stores.get(base) {
        return Ok(s.clone());
    }
    // A dead endpoint is reported in seconds, not minutes.
    let retry = object_store::RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let scheme = base.split("://").next().unwrap_or("").to_ascii_lowercase();
    fn both<S: ObjectStore + PaginatedListStore>(s: S) -> Stores {
        let s = Arc::new(s);
        (s.clone(), Some(s))
    }
    let store: Stores = match scheme.as_str() {
        "s3" | "s3a" => {
            plain_http_allowed(url)?;
            both(
                s3_profile(object_store::aws::AmazonS3Builder::from_env())
                    .with_url(base)
                    .with_retry(retry)
                    .build()?,
            )
        }
        "gs" => both(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(base)
                .with_retry(retry)
                .build()?,
        ),
        "az" | "abfs" | "abfss" => both(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(base)
                .with_retry(retry)
                .build()?,
        ),
        "file" => (Arc::new(object_store::local::LocalFileSystem::new()), None),
        _ => bail!("{url}: not an object-storage URL"),
    };
    stores.insert(base.to_string(), store.clone());
    Ok(store)
}

/// Refuses, with a word on how to allow it, a plain-HTTP S3 endpoint
/// that AWS_ALLOW_HTTP does not allow (the client's own error names
/// neither).
fn plain_http_allowed(url: &str) -> Result<()> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let allowed = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if endpoint
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
        && !allowed
    {
        bail!(
            "{url}: the endpoint AWS_ENDPOINT_URL={endpoint} is plain HTTP; set AWS_ALLOW_HTTP=true to use it"
        );
    }
    Ok(())
}

/// The S3 builder with what `AWS_PROFILE`'s (or the default profile's)
/// section of `~/.aws/credentials` and `~/.aws/config` gives, where the
/// environment set no key of its own.
fn s3_profile(mut b: object_store::aws::AmazonS3Builder) -> object_store::aws::AmazonS3Builder {
    use object_store::aws::AmazonS3ConfigKey as K;
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return b;
    }
    let Some(home) = std::env::var_os("HOME") else {
        return b;
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let dir = std::path::Path::new(&home).join(".aws");
    let files = [
        std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
            .map_or_else(|| dir.join("credentials"), Into::into),
        std::env::var_os("AWS_CONFIG_FILE").map_or_else(|| dir.join("config"), Into::into),
    ];
    for (i, file) in files.iter().enumerate() {
        // config names its sections "profile NAME", but "default".
        let section = if i == 1 && profile != "default" {
            format!("profile {profile}")
        } else {
            profile.clone()
        };
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (key, value) in ini_section(&text, &section) {
            let k = match key.as_str() {
                "aws_access_key_id" => K::AccessKeyId,
                "aws_secret_access_key" => K::SecretAccessKey,
                "aws_session_token" => K::Token,
                "region" if std::env::var_os("AWS_REGION").is_none() => K::Region,
                "endpoint_url" if std::env::var_os("AWS_ENDPOINT_URL").is_none() => K::Endpoint,
                _ => continue,
            };
            b = b.with_config(k, value);
        }
    }
    b
}

/// The `key = value` lines of `[section]` in an INI file.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

/// A key a listing gave that no key path can be made of, and why.
fn bad_key(e: &object_store::Error) -> Option<(String, String)> {
    use object_store::path::Error as P;
    match e {
        object_store::Error::InvalidPath { source } => match source {
            P::EmptySegment { path } => Some((path.clone(), "an empty path segment".into())),
            P::BadSegment { path, source } => Some((path.clone(), source.to_string())),
            _ => None,
        },
        _ => None,
    }
}

/// `e` as one message: object_store's errors repeat their sources' text
/// in their own, which a chain would print again.
fn plain(e: object_store::Error) -> anyhow::Error {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text = format!("{text}: {t}");
        }
        source = s.source();
    }
    anyhow!(text)
}

fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Location {
    /// The location `url` names (`scheme://bucket/key...`; a trailing `/`
    /// is the same location).
    pub(crate) fn parse(url: &str) -> Result<Location> {
        if !is_url(url) {
            bail!("{url}: not an object-storage URL");
        }
        let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
        let (base, path) = if scheme.eq_ignore_ascii_case("file") {
            if !rest.starts_with('/') {
                bail!("{url}: a file:// URL needs an absolute path (file:///...)");
            }
            ("file://".to_string(), rest)
        } else {
            let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("{url}: no bucket");
            }
            (format!("{}://{bucket}", scheme.to_ascii_lowercase()), path)
        };
        let path = path.trim_matches('/');
        let key = Key::parse(path).with_context(|| format!("{url}: not a valid object key"))?;
        let (store, pages) =
            store_for(&base, url).with_context(|| format!("{url}: cannot reach"))?;
        Ok(Location {
            store,
            pages,
            base: base.into(),
            key,
        })
    }

    /// Its URL, without a trailing `/`.
    pub(crate) fn url(&self) -> String {
        let key = self.key.as_ref();
        if self.base.as_ref() == "file://" {
            format!("file:///{key}")
        } else if key.is_empty() {
            self.base.to_string()
        } else {
            format!("{}/{key}", self.base)
        }
    }

    /// The location `name` below this one: `name` is one segment of a
    /// key as it is (a name a listing gave), encoded once when requested;
    /// only a name no key can hold (`.`, `..`, `/`, control characters)
    /// is escaped.
    pub(crate) fn join(&self, name: &str) -> Location {
        let part = PathPart::parse(name).unwrap_or_else(|_| PathPart::from(name));
        Location {
            store: self.store.clone(),
            pages: self.pages.clone(),
            base: self.base.clone(),
            key: self.key.clone().join(part),
        }
    }

    /// The object's metadata; `None` where there is no object. A bucket's
    /// root is never an object (and Azure answers a HEAD of it with 400).
    pub(crate) fn head(&self) -> Result<Option<Meta>> {
        if self.key.as_ref().is_empty() {
            return Ok(None);
        }
        match block_on(self.store.head(&self.key)) {
            Ok(m) => Ok(Some(meta(&m))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(plain(e)).with_context(|| format!("{}: cannot stat", self.url())),
        }
    }

    /// The object's bytes if there is one of at most `limit` bytes.
    pub(crate) fn read_all(&self, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(m) = self.head()? else {
            return Ok(None);
        };
        if m.size > limit {
            return Ok(None);
        }
        match block_on(async { self.store.get(&self.key).await?.bytes().await }) {
            Ok(b) if b.len() as u64 <= limit => Ok(Some(b.to_vec())),
            Ok(_) => Ok(None),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(plain(e)).with_context(|| format!("{}: cannot read", self.url())),
        }
    }

    /// Up to `len` bytes from the object's start.
    pub(crate) fn read_head(&self, len: u64) -> Result<Vec<u8>> {
        let size = self
            .head()?
            .with_context(|| format!("{}: no such object", self.url()))?
            .size;
        let n = len.min(size);
        if n == 0 {
            return Ok(Vec::new());
        }
        let b = block_on(self.store.get_range(&self.key, 0..n))
            .map_err(plain)
            .with_context(|| format!("{}: cannot read", self.url()))?;
        Ok(b.to_vec())
    }

    /// The object's first `len` bytes (no more than it has: the caller
    /// knows its size).
    pub(crate) fn read_start(&self, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let b = block_on(self.store.get_range(&self.key, 0..len))
            .map_err(plain)
            .with_context(|| format!("{}: cannot read", self.url()))?;
        Ok(b.to_vec())
    }

    /// Writes the object whole: it appears complete or not at all.
    pub(crate) fn put(&self, bytes: Vec<u8>) -> Result<()> {
        block_on(self.store.put(&self.key, PutPayload::from(bytes)))
            .map_err(plain)
            .with_context(|| format!("{}: cannot write", self.url()))?;
        Ok(())
    }

    /// The object's bytes (if there is one of at most `limit` bytes) and
    /// the version they are, for [`Location::put_if`].
    pub(crate) fn read_versioned(&self, limit: u64) -> Result<Option<(Vec<u8>, Version)>> {
        let got = block_on(async {
            let r = self.store.get(&self.key).await?;
            let v = Version {
                e_tag: r.meta.e_tag.clone(),
                version: r.meta.version.clone(),
            };
            if r.meta.size > limit {
                return Ok(None);
            }
            Ok(Some((r.bytes().await?.to_vec(), v)))
        });
        match got {
            Ok(r) => Ok(r.filter(|(b, _)| b.len() as u64 <= limit)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("{}: cannot read", self.url())),
        }
    }

    /// Writes the object whole only if it is still at `version` (`None`:
    /// only if there is none); false if it is not. Where the store has no
    /// conditional writes (`file://` updates, S3 with conditional puts
    /// disabled) it is checked, then written: not atomically.
    pub(crate) fn put_if(&self, bytes: Vec<u8>, version: Option<&Version>) -> Result<bool> {
        use object_store::{PutMode, PutOptions, UpdateVersion};
        let mode = match version {
            None => PutMode::Create,
            Some(v) => PutMode::Update(UpdateVersion {
                e_tag: v.e_tag.clone(),
                version: v.version.clone(),
            }),
        };
        let put = |mode| {
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            block_on(
                self.store
                    .put_opts(&self.key, PutPayload::from(bytes.clone()), opts),
            )
        };
        match put(mode) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. }) => {
                if version.is_none() && self.head()?.is_some() {
                    return Ok(false);
                }
                put(PutMode::Overwrite).with_context(|| format!("{}: cannot write", self.url()))?;
                Ok(true)
            }
            Err(e) if version.is_some() && not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("{}: cannot write", self.url())),
        }
    }

    /// Removes the object, if there is one.
    pub(crate) fn delete(&self) -> Result<()> {
        match block_on(self.store.delete(&self.key)) {
            Err(e) if !not_found(&e) => {
                Err(plain(e)).with_context(|| format!("{}: cannot remove", self.url()))
            }
            _ => Ok(()),
        }
    }

    /// What the prefix holds, one level down. A key no key path can be
    /// made of fails the store's listing page that holds it: that page
    /// is asked for again in halves down to the key, which is given in
    /// [`Listing::bad`], and the listing goes on after it.
    pub(crate) fn list(&self) -> Result<Listing> {
        let mut out = Listing::default();
        let mut add = |r: object_store::ListResult| {
            let name = |k: &Key| k.filename().map(String::from);
            out.dirs.extend(r.common_prefixes.iter().filter_map(name));
            out.objects.extend(
                r.objects
                    .iter()
                    .filter_map(|m| Some((name(&m.location)?, meta(m)))),
            );
        };
        match &self.pages {
            Some(pages) => self.list_pages(pages.as_ref(), &mut add, &mut out.bad)?,
            None => {
                let prefix = (!self.key.as_ref().is_empty()).then_some(&self.key);
                add(block_on(self.store.list_with_delimiter(prefix))
                    .map_err(plain)
                    .with_context(|| format!("{}: cannot list", self.url()))?);
            }
        }
        out.dirs.sort();
        out.objects.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Lists the prefix page by page into `add`; what cannot be listed
    /// into `bad`.
    fn list_pages(
        &self,
        pages: &dyn PaginatedListStore,
        add: &mut dyn FnMut(object_store::ListResult),
        bad: &mut Vec<(String, String, String)>,
    ) -> Result<()> {
        let prefix = match self.key.as_ref() {
            "" => String::new(),
            k => format!("{k}/"),
        };
        let (mut token, mut offset, mut size) = (None, None::<String>, PAGE_KEYS);
        loop {
            let opts = object_store::list::PaginatedListOptions {
                offset: offset.clone().filter(|_| token.is_none()),
                delimiter: Some("/".into()),
                max_keys: Some(size),
                page_token: token.clone(),
                ..Default::default()
            };
            let p = (!prefix.is_empty()).then_some(prefix.as_str());
            match block_on(pages.list_paginated(p, opts)) {
                Ok(page) => {
                    add(page.result);
                    size = (size * 2).min(PAGE_KEYS);
                    token = page.page_token;
                    if token.is_none() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let Some((key, why)) = bad_key(&e) else {
                        return Err(plain(e))
                            .with_context(|| format!("{}: cannot list", self.url()));
                    };
                    if size > 1 {
                        size /= 2;
                        continue;
                    }
                    // The one key of the page: past it (and, for a
                    // prefix, all under it), from its own name on.
                    let next = match key.strip_suffix('/') {
                        Some(_) => format!("{key}\u{10FFFF}"),
                        None => key.clone(),
                    };
                    if bad.last().is_some_and(|(k, _, _)| *k == key)
                        || offset.as_ref() >= Some(&next)
                    {
                        bail!("{}: cannot list past {key:?}", self.url());
                    }
                    let name = key.strip_prefix(&prefix).unwrap_or(&key).to_string();
                    bad.push((key, name, why));
                    (token, offset) = (None, Some(next));
                }
            }
        }
    }

    /// Whether any object lies under the prefix.
    pub(crate) fn has_objects(&self) -> Result<bool> {
        let prefix = self.key.clone();
        let first = block_on(async move { self.store.list(Some(&prefix)).next().await });
        match first {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(plain(e)).with_context(|| format!("{}: cannot list", self.url())),
        }
    }

    /// The object, for reads by range.
    pub(crate) fn object(&self) -> Result<RemoteObject> {
        let m = self
            .head()?
            .with_context(|| format!("{}: no such object", self.url()))?;
        Ok(RemoteObject(Arc::new(Object {
            loc: self.clone(),
            url: self.url(),
            size: m.size,
        })))
    }

    /// A multipart upload to this key: nothing appears under it until
    /// [`Upload::finish`]; dropped unfinished, the upload is aborted.
    pub(crate) fn upload(&self) -> Result<Upload> {
        let up = block_on(self.store.put_multipart(&self.key))
            .map_err(plain)
            .with_context(|| format!("{}: cannot start an upload", self.url()))?;
        Ok(Upload {
            inner: Some(WriteMultipart::new_with_chunk_size(up, PART_SIZE)),
            url: self.url(),
            written: 0,
        })
    }
}

/// An object read by range.
struct Object {
    loc: Location,
    url: String,
    size: u64,
}

impl RangeRead for Object {
    fn url(&self) -> &str {
        &self.url
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "past the end of the object")
            })?;
        let b = block_on(self.loc.store.get_range(&self.loc.key, offset..end))
            .map_err(io::Error::other)?;
        if b.len() != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("asked for {} bytes, got {}", buf.len(), b.len()),
            ));
        }
        buf.copy_from_slice(&b);
        Ok(())
    }

    fn stream(&self) -> io::Result<Box<dyn Read + Send>> {
        let r = block_on(self.loc.store.get(&self.loc.key)).map_err(io::Error::other)?;
        Ok(Box::new(StreamReader {
            stream: r.into_stream(),
            chunk: bytes::Bytes::new(),
        }))
    }
}

/// An object's bytes from one GET, as a reader.
struct StreamReader {
    stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// A multipart upload being written: parts of [`PART_SIZE`] go up as
/// they fill, at most [`PARTS_IN_FLIGHT`] at once (a write waits for
/// room), so memory stays bounded whatever the object's size.
pub(crate) struct Upload {
    inner: Option<WriteMultipart>,
    url: String,
    written: u64,
}

impl Upload {
    /// Completes the upload: the object appears under its key whole.
    pub(crate) fn finish(mut self) -> Result<u64> {
        let w = self.inner.take().ok_or_else(|| anyhow!("upload ended"))?;
        block_on(w.finish())
            .map_err(plain)
            .with_context(|| format!("{}: cannot complete the upload", self.url))?;
        Ok(self.written)
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let w = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("upload ended"))?;
        // The part's upload is spawned on the runtime: write inside it.
        block_on(async {
            w.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            w.write(buf);
            Ok::<_, object_store::Error>(())
        })
        .map_err(io::Error::other)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(w) = self.inner.take() {
            // Unfinished: nothing may appear under the key.
            if let Err(e) = block_on(w.abort()) {
                tracing::warn!(url = %self.url, error = %e, "cannot abort the upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_keys() {
        assert!(is_url("s3://b/k") && is_url("S3://b") && is_url("file:///x"));
        assert!(!is_url("s3:/b") && !is_url("./s3://b") && !is_url("/tmp/x"));
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/out/", dir.path().display());
        let loc = Location::parse(&url).unwrap();
        assert_eq!(loc.url(), url.trim_end_matches('/'));
        let obj = loc.join("a").join("core.1");
        assert_eq!(obj.url(), format!("{}/a/core.1", loc.url()));
        assert!(Location::parse("s3:///key").is_err());
        assert!(Location::parse("file://relative").is_err());
    }

    #[test]
    fn file_urls_read_write_list_and_upload() {
        let dir = tempfile::tempdir().unwrap();
        let root = Location::parse(&format!("file://{}", dir.path().display())).unwrap();
        assert!(!root.join("x").has_objects().unwrap());
        root.join("x").join("a").put(b"hello".to_vec()).unwrap();
        let mut up = root.join("x").join("big").upload().unwrap();
        let data: Vec<u8> = (0..PART_SIZE * 2 + 5).map(|i| i as u8).collect();
        up.write_all(&data).unwrap();
        assert!(root.join("x").join("big").head().unwrap().is_none());
        assert_eq!(up.finish().unwrap(), data.len() as u64);
        let l = root.join("x").list().unwrap();
        assert_eq!(l.dirs, Vec::<String>::new());
        let names: Vec<_> = l
            .objects
            .iter()
            .map(|(n, m)| (n.as_str(), m.size))
            .collect();
        assert_eq!(names, [("a", 5), ("big", data.len() as u64)]);
        assert_eq!(root.list().unwrap().dirs, ["x"]);
        let obj = root.join("x").join("big").object().unwrap();
        let mut buf = [0u8; 7];
        obj.0.read_exact_at(&mut buf, PART_SIZE as u64).unwrap();
        assert_eq!(buf, data[PART_SIZE..PART_SIZE + 7]);
        let mut all = Vec::new();
        obj.0.stream().unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        // An upload dropped unfinished leaves nothing.
        let mut up = root.join("x").join("gone").upload().unwrap();
        up.write_all(&data).unwrap();
        drop(up);
        assert!(root.join("x").join("gone").head().unwrap().is_none());
        root.join("x").join("a").delete().unwrap();
        root.join("x").join("a").delete().unwrap();
        assert!(root.join("x").read_head(3).is_err());
        assert_eq!(
            root.join("x").join("big").read_head(3).unwrap(),
            data[..3].to_vec()
        );
        assert_eq!(
            ini_section("[a]\nx = 1\n[b]\nx=2\n", "b"),
            [("x".into(), "2".into())]
        );
    }
}
