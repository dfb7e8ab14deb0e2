//! Image references (`NAME[:TAG][@DIGEST]`, image IDs) and how they match
//! the names an archive gives its images (the rule is in the module
//! documentation of [`crate::oci`]).

use super::digest::Digest;

/// How to pick one image out of an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// The image asked for (`NAME:TAG`, `NAME@sha256:...`, an image ID);
    /// it must match.
    pub reference: Option<String>,
    /// Names the checkpoint gives its image (config.dump's
    /// `rootfsImageName`, `rootfsImageRef`), tried in order when no
    /// reference is given; they also tell whether the image used is the
    /// one the checkpoint names.
    pub hints: Vec<String>,
    /// Only images of this architecture (`amd64`, `arm64`, ... as OCI
    /// platforms name them), where an image says.
    pub architecture: Option<String>,
}

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The registry, if the reference names one.
    domain: Option<String>,
    /// The repository path, without Docker Hub's implied `library/`.
    path: String,
    /// The tag (`latest` when neither tag nor digest is given).
    tag: Option<String>,
    /// The digest, for `NAME@DIGEST`, `sha256:...` and bare image IDs.
    pub(crate) digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference; `None` for text that is none.
    pub(crate) fn parse(s: &str) -> Option<Reference> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        // A bare image ID (64 hex digits), or a bare digest.
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(Reference::digest_only(
                Digest::parse(&format!("sha256:{}", s.to_ascii_lowercase())).ok()?,
            ));
        }
        if let Ok(d) = Digest::parse(s) {
            return Some(Reference::digest_only(d));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d).ok()?)),
            None => (s, None),
        };
        let (name, tag) = match name.rfind(':') {
            Some(i) if !name[i..].contains('/') => (&name[..i], Some(name[i + 1..].to_string())),
            _ => (name, None),
        };
        if name.is_empty() || tag.as_deref() == Some("") {
            return None;
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                let d = match first {
                    "index.docker.io" | "registry-1.docker.io" => "docker.io",
                    d => d,
                };
                (Some(d.to_string()), rest)
            }
            _ => (None, name),
        };
        let hub = domain.as_deref().is_none_or(|d| d == "docker.io");
        let path = match path.strip_prefix("library/") {
            Some(p) if hub && !p.contains('/') => p,
            _ => path,
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Some(Reference {
            domain,
            path: path.to_string(),
            tag,
            digest,
        })
    }

    fn digest_only(d: Digest) -> Reference {
        Reference {
            domain: None,
            path: String::new(),
            tag: None,
            digest: Some(d),
        }
    }

    /// Whether an image with these names and digests is the one this
    /// reference means.
    pub(crate) fn matches(&self, names: &[String], digests: &[&Digest]) -> bool {
        if let Some(d) = &self.digest {
            return digests.contains(&d);
        }
        names
            .iter()
            .filter_map(|n| Reference::parse(n))
            .any(|n| self.names(&n))
    }

    /// Same repository and tag; a missing registry on either side matches any.
    fn names(&self, other: &Reference) -> bool {
        let domains = match (&self.domain, &other.domain) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        domains && self.path == other.path && self.tag == other.tag
    }
}

/// Whether `text` (a reference, an image ID or a name as written) means
/// an image with these names and digests.
pub(crate) fn matches(text: &str, names: &[String], digests: &[&Digest]) -> bool {
    names.iter().any(|n| n == text)
        || Reference::parse(text).is_some_and(|r| r.matches(names, digests))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalisation() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.domain, r.path.as_str(), r.tag.as_deref()),
            (None, "busybox", Some("latest"))
        );
        let r = Reference::parse("index.docker.io/library/alpine:3").unwrap();
        assert_eq!(
            (r.domain.as_deref(), r.path.as_str(), r.tag.as_deref()),
            (Some("docker.io"), "alpine", Some("3"))
        );
        let r = Reference::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(
            (r.domain.as_deref(), r.path.as_str()),
            (Some("localhost:5000"), "team/app")
        );
        let r = Reference::parse("quay.io/library/x").unwrap();
        assert_eq!(r.path, "library/x", "library/ is Docker Hub's only");
        assert!(Reference::parse("x:").is_none());
        assert!(Reference::parse("x@sha256:1234").is_none());
        assert!(Reference::parse("").is_none());
    }

    #[test]
    fn matching() {
        let cfg = Digest::of(Algorithm::Sha256, b"config");
        let man = Digest::of(Algorithm::Sha256, b"manifest");
        let other = Digest::of(Algorithm::Sha256, b"other");
        let d = [&cfg, &man];
        let n = names(&["docker.io/library/victim:1", "localhost/victim:1"]);
        for yes in [
            "victim:1",
            "library/victim:1",
            "docker.io/victim:1",
            "index.docker.io/library/victim:1",
            "localhost/victim:1",
            &format!("victim@{man}"),
            &format!("anything@{cfg}"),
            &cfg.to_string(),
            cfg.hex(),
            &cfg.hex().to_ascii_uppercase(),
        ] {
            assert!(matches(yes, &n, &d), "{yes}");
        }
        for no in [
            "victim",
            "victim:2",
            "quay.io/victim:1",
            "other/victim:1",
            &format!("victim@{other}"),
            other.hex(),
        ] {
            assert!(!matches(no, &n, &d), "{no}");
        }
        // Names without a registry match any registry's.
        assert!(matches(
            "docker.io/library/upper:1",
            &names(&["upper:1"]),
            &[]
        ));
        assert!(matches("localhost/upper", &names(&["upper"]), &[]));
        // Text equal to a name matches it even when it is no reference.
        assert!(matches("My Image", &names(&["My Image"]), &[]));
    }
}
