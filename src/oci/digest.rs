//! Content digests as OCI descriptors write them (`sha256:<64 hex>`,
//! `sha512:<128 hex>`), and readers that check a blob against one while it
//! streams through, so that every byte is hashed once, on the read that
//! uses it.

use std::fmt;
use std::io::{self, Read};

use anyhow::{bail, Result};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm criu2core can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256, the algorithm of nearly every image.
    Sha256,
    /// SHA-512, which the OCI image spec also registers.
    Sha512,
}

impl Algorithm {
    /// The name in a digest string and in `blobs/<name>/`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest: a known algorithm and its lowercase hex value, so
/// `blobs/<algorithm>/<hex>` is always a plain path inside a layout.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:hex`. Anything else is refused: unknown
    /// algorithms, hex of the wrong length or case, separators or path
    /// characters.
    pub fn parse(s: &str) -> crate::Result<Digest> {
        (|| -> Result<Digest> {
            let shown = || s.escape_debug().to_string();
            let Some((alg, hex)) = s.split_once(':') else {
                bail!("digest \"{}\" has no algorithm", shown());
            };
            let algorithm = match alg {
                "sha256" => Algorithm::Sha256,
                "sha512" => Algorithm::Sha512,
                _ => bail!(
                    "digest \"{}\": algorithm {:?} is not supported (sha256, sha512)",
                    shown(),
                    alg.escape_debug().to_string()
                ),
            };
            if hex.len() != algorithm.hex_len()
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                bail!(
                    "digest \"{}\" is not {} lowercase hex digits",
                    shown(),
                    algorithm.hex_len()
                );
            }
            Ok(Digest {
                algorithm,
                hex: hex.to_string(),
            })
        })()
        .map_err(crate::Error::new)
    }

    /// The digest of `bytes`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex value.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Where an OCI image layout keeps the blob: `blobs/<algorithm>/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An incremental hash of one algorithm.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> Digest {
        let (algorithm, bytes): (Algorithm, Vec<u8>) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest { algorithm, hex }
    }
}

/// What a blob must be: its digest and/or its size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// The digest the bytes must have.
    pub digest: Option<Digest>,
    /// How many bytes there must be.
    pub size: Option<u64>,
}

impl Expect {
    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.digest.is_none() && self.size.is_none()
    }
}

/// Checks bytes already in memory against `expect`; `what` names them.
pub(crate) fn check_bytes(what: &str, bytes: &[u8], expect: &Expect) -> Result<()> {
    if let Some(size) = expect.size {
        if bytes.len() as u64 != size {
            bail!(
                "{what}: size mismatch: the descriptor says {size} bytes, the blob has {}",
                bytes.len()
            );
        }
    }
    if let Some(d) = &expect.digest {
        let got = Digest::of(d.algorithm(), bytes);
        if &got != d {
            bail!("{what}: digest mismatch: the descriptor says {d}, the content is {got}");
        }
    }
    Ok(())
}

/// Passes bytes through, hashing and counting them; at the end of the
/// stream (or as soon as it runs past the expected size) it fails with an
/// error naming the blob if the bytes are not what was expected.
pub(crate) struct VerifyingReader<R> {
    inner: R,
    what: String,
    expect: Expect,
    hasher: Option<Hasher>,
    count: u64,
    checked: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Checks `inner` against `expect`; `what` names it in errors.
    pub(crate) fn new(inner: R, what: impl Into<String>, expect: Expect) -> Self {
        let hasher = expect.digest.as_ref().map(|d| Hasher::new(d.algorithm()));
        VerifyingReader {
            inner,
            what: what.into(),
            expect,
            hasher,
            count: 0,
            checked: false,
        }
    }

    /// Reads what is left, so that the whole blob is checked.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }

    fn fail(&self, msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {msg}", self.what))
    }

    fn check_end(&mut self) -> io::Result<()> {
        if self.checked {
            return Ok(());
        }
        self.checked = true;
        if let Some(size) = self.expect.size {
            if self.count != size {
                return Err(self.fail(format!(
                    "size mismatch: the descriptor says {size} bytes, the blob has {}",
                    self.count
                )));
            }
        }
        if let (Some(h), Some(want)) = (self.hasher.take(), &self.expect.digest) {
            let got = h.finish();
            if &got != want {
                return Err(self.fail(format!(
                    "digest mismatch: the descriptor says {want}, the content is {got}"
                )));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.check_end()?;
            return Ok(0);
        }
        self.count += n as u64;
        if let Some(size) = self.expect.size {
            if self.count > size {
                return Err(self.fail(format!(
                    "size mismatch: the descriptor says {size} bytes, the blob has more"
                )));
            }
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_only_known_algorithms_and_clean_hex() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(
            d.blob_path(),
            format!("blobs/sha256/{}", &EMPTY_SHA256[7..])
        );
        assert_eq!(Digest::of(Algorithm::Sha256, b""), d);
        let sha512 = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(Digest::parse(&sha512.to_string()).unwrap(), sha512);
        assert!(sha512.hex().starts_with("ddaf35a193617aba"));
        for bad in [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha384:abc",
            "sha256:../../../../etc/passwd",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8",
            "../sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
    }

    fn read_all(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).map(|_| v)
    }

    #[test]
    fn verifying_reader_checks_digest_and_size() {
        let good = Expect {
            digest: Some(Digest::of(Algorithm::Sha256, b"hello")),
            size: Some(5),
        };
        let mut r = VerifyingReader::new(&b"hello"[..], "blob A", good.clone());
        assert_eq!(read_all(&mut r).unwrap(), b"hello");
        assert_eq!(r.count, 5);
        let err = read_all(&mut VerifyingReader::new(
            &b"hellO"[..],
            "blob A",
            good.clone(),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("blob A: digest mismatch"), "{err}");
        let err = read_all(&mut VerifyingReader::new(
            &b"hello!"[..],
            "blob A",
            good.clone(),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("blob A: size mismatch"), "{err}");
        let err = read_all(&mut VerifyingReader::new(
            &b"hell"[..],
            "blob A",
            good.clone(),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("says 5 bytes, the blob has 4"), "{err}");
        assert!(check_bytes("x", b"hello", &good).is_ok());
        assert!(check_bytes("x", b"hellO", &good).is_err());
        assert!(check_bytes("x", b"hell", &good).is_err());
    }
}
