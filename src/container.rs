//! What a checkpoint says about its container, whichever engine wrote it:
//! `config.dump` (the engine's container config: Podman, CRI-O, containerd's
//! CRI plugin) and `spec.dump` (the OCI runtime spec, whose annotations
//! name the engine, pod and namespace); the annotations of a checkpoint
//! image (Podman's `--create-image`, CRI-O's recipe, `checkpointctl
//! build`, containerd's checkpoint index); and for a Docker checkpoint the
//! container's `config.v2.json` two directories above it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::oci::ImageInfo;

/// Container facts from a checkpoint; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ContainerInfo {
    /// "Podman", "CRI-O", "containerd" or "Docker" (or what a checkpoint
    /// image's `org.criu.checkpoint.engine.name` says).
    pub engine: Option<String>,
    /// Container name.
    pub name: Option<String>,
    /// Container id.
    pub id: Option<String>,
    /// Image the container ran, by name.
    pub image: Option<String>,
    /// The image by reference or id, where recorded apart from its name
    /// (config.dump's `rootfsImageRef`, or Podman's image id).
    pub image_ref: Option<String>,
    /// OCI runtime (crun, runc, ...).
    pub runtime: Option<String>,
    /// When the container was created.
    pub created: Option<String>,
    /// When it was checkpointed.
    pub checkpointed: Option<String>,
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Kubernetes pod.
    pub pod: Option<String>,
    /// The checkpoint image's own name, for a checkpoint that came as an
    /// image.
    pub checkpoint_image: Option<String>,
    /// Every name and id of the container's image the checkpoint records,
    /// for matching an image given with `--image`.
    #[serde(skip)]
    pub(crate) image_hints: Vec<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() && !s.starts_with("0001-01-01") => Some(s.clone()),
        _ => None,
    }
}

fn ann(a: &BTreeMap<String, String>, key: &str) -> Option<String> {
    a.get(key).filter(|v| !v.is_empty()).cloned()
}

/// Largest Docker `config.v2.json` or `hostconfig.json` read.
const MAX_DOCKER_CONFIG: u64 = 1 << 20;

impl ContainerInfo {
    /// Reads the facts from the two files' contents (either may be absent
    /// or unparsable; what can be read is kept). A spec whose
    /// `io.container.manager` annotation is neither `libpod` nor `cri-o`
    /// is containerd's, as checkpointctl takes it.
    pub fn from_dumps(config: Option<&[u8]>, spec: Option<&[u8]>) -> Option<ContainerInfo> {
        let config: Value = config
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let spec: Value = spec
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        if config.is_null() && spec.is_null() {
            return None;
        }
        let mut c = ContainerInfo {
            name: text(&config, "name"),
            id: text(&config, "id"),
            image: text(&config, "rootfsImageName").or_else(|| text(&config, "rootfsImage")),
            runtime: text(&config, "runtime"),
            created: text(&config, "createdTime"),
            checkpointed: text(&config, "checkpointedTime"),
            ..Default::default()
        };
        c.image_ref = text(&config, "rootfsImageRef")
            .or_else(|| text(&config, "rootfsImage").filter(|id| Some(id) != c.image.as_ref()));
        for key in ["rootfsImageName", "rootfsImageRef", "rootfsImage"] {
            c.hint(text(&config, key));
        }
        if !spec.is_null() {
            c.apply_spec(&spec);
        }
        Some(c)
    }

    /// Adds what the spec's annotations say.
    fn apply_spec(&mut self, spec: &Value) {
        let a = spec.get("annotations").cloned().unwrap_or(Value::Null);
        self.pod = text(&a, "io.kubernetes.pod.name").or(self.pod.take());
        self.namespace = text(&a, "io.kubernetes.pod.namespace").or(self.namespace.take());
        match text(&a, "io.container.manager").as_deref() {
            Some("libpod") => self.engine = Some("Podman".into()),
            Some("cri-o") => {
                self.engine = Some("CRI-O".into());
                let meta: Value = text(&a, "io.kubernetes.cri-o.Metadata")
                    .and_then(|m| serde_json::from_str(&m).ok())
                    .unwrap_or(Value::Null);
                self.name = text(&meta, "name").or(self.name.take());
                self.created = text(&a, "io.kubernetes.cri-o.Created").or(self.created.take());
                self.image = text(&a, "io.kubernetes.cri-o.ImageName").or(self.image.take());
                self.hint(text(&a, "io.kubernetes.cri-o.ImageName"));
                self.hint(text(&a, "io.kubernetes.cri-o.ImageRef"));
            }
            _ => {
                self.engine = Some("containerd".into());
                self.name = text(&a, "io.kubernetes.cri.container-name").or(self.name.take());
                self.image = text(&a, "io.kubernetes.cri.image-name").or(self.image.take());
                self.hint(text(&a, "io.kubernetes.cri.image-name"));
                self.namespace =
                    text(&a, "io.kubernetes.cri.sandbox-namespace").or(self.namespace.take());
                self.pod = text(&a, "io.kubernetes.cri.sandbox-name").or(self.pod.take());
            }
        }
    }

    fn hint(&mut self, h: Option<String>) {
        if let Some(h) = h {
            if !self.image_hints.contains(&h) {
                self.image_hints.push(h);
            }
        }
    }

    /// The names and ids of the container's image the checkpoint records,
    /// its name first.
    pub fn image_hints(&self) -> Vec<String> {
        let mut h: Vec<String> = self.image.iter().chain(&self.image_ref).cloned().collect();
        for x in &self.image_hints {
            if !h.contains(x) {
                h.push(x.clone());
            }
        }
        h
    }

    /// Adds what a checkpoint image for Kubernetes restore says of itself
    /// (Podman's `io.podman.annotations.checkpoint.*`, CRI-O's
    /// `io.kubernetes.cri-o.annotations.checkpoint.name`, checkpointctl's
    /// `org.criu.checkpoint.*`) where the archive in it did not say it.
    pub(crate) fn with_image_annotations(
        c: Option<ContainerInfo>,
        img: &ImageInfo,
    ) -> ContainerInfo {
        let a = &img.annotations;
        let mut c = c.unwrap_or_default();
        let podman = "io.podman.annotations.checkpoint.";
        let crio = "io.kubernetes.cri-o.annotations.checkpoint.";
        let criu = "org.criu.checkpoint.";
        let has = |p: &str| a.keys().any(|k| k.starts_with(p));
        if c.engine.is_none() {
            c.engine = if let Some(e) = ann(a, "org.criu.checkpoint.engine.name") {
                Some(e)
            } else if has(podman) {
                Some("Podman".into())
            } else if has(crio) {
                Some("CRI-O".into())
            } else {
                None
            };
        }
        let first = |keys: &[&str]| keys.iter().find_map(|k| ann(a, k));
        c.name = c.name.or_else(|| {
            first(&[
                &format!("{podman}name"),
                &format!("{crio}name"),
                &format!("{criu}container.name"),
            ])
        });
        let image = first(&[
            &format!("{podman}rootfsImageName"),
            &format!("{criu}rootfsImageName"),
            &format!("{podman}rawImageName"),
            &format!("{criu}rawImageName"),
        ]);
        c.hint(image.clone());
        c.image = c.image.or(image);
        let id = first(&[
            &format!("{podman}rootfsImageID"),
            &format!("{criu}rootfsImageID"),
            &format!("{criu}rootfsImageSha"),
        ]);
        c.hint(id.clone());
        c.image_ref = c.image_ref.or(id);
        c.runtime = c.runtime.or_else(|| {
            first(&[
                &format!("{podman}runtime.name"),
                &format!("{criu}runtime.name"),
            ])
        });
        c.pod = c.pod.or_else(|| ann(a, &format!("{criu}pod.name")));
        c.namespace = c
            .namespace
            .or_else(|| ann(a, &format!("{criu}pod.namespace")));
        c.checkpoint_image = img.names.first().cloned();
        c
    }

    /// What containerd's checkpoint index says (`ctr containers
    /// checkpoint`): the image the container ran
    /// (`org.opencontainers.image.ref.name` on the index), its runtime
    /// (`io.containerd.checkpoint.runtime`), and what the container's spec
    /// says (the CRI plugin's annotations, where it made the container).
    pub(crate) fn from_containerd_image(img: &ImageInfo, spec: Option<&[u8]>) -> ContainerInfo {
        let a = &img.annotations;
        let mut c = ContainerInfo {
            engine: Some("containerd".into()),
            image: ann(a, "org.opencontainers.image.ref.name").or_else(|| ann(a, "image.name")),
            runtime: ann(a, "io.containerd.checkpoint.runtime"),
            checkpoint_image: img.names.first().cloned(),
            ..Default::default()
        };
        c.hint(c.image.clone());
        let spec: Value = spec
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        if !spec.is_null() {
            c.apply_spec(&spec);
            c.engine = Some("containerd".into());
        }
        c
    }

    /// What a Docker checkpoint says: an image directory with runc's
    /// `descriptors.json`, in Docker's layout
    /// (`/var/lib/docker/containers/<id>/checkpoints/<name>`), whose
    /// container's `config.v2.json` and `hostconfig.json` give its name,
    /// image, creation time and runtime. `None` for any other directory.
    pub fn from_images_dir(dir: &Path) -> Option<ContainerInfo> {
        if !dir.join("descriptors.json").is_file() {
            return None;
        }
        let dir = std::fs::canonicalize(dir).ok()?;
        let checkpoints = dir.parent()?;
        let container = checkpoints.parent()?;
        let id = container.file_name()?.to_str()?;
        if checkpoints.file_name()? != "checkpoints"
            || id.len() != 64
            || !id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        let read = |name: &str| -> Value {
            let p = container.join(name);
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() && m.len() <= MAX_DOCKER_CONFIG => std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            }
        };
        let config = read("config.v2.json");
        let host = read("hostconfig.json");
        let image = config.get("Config").and_then(|c| text(c, "Image"));
        let mut c = ContainerInfo {
            engine: Some("Docker".into()),
            id: Some(id.to_string()),
            name: text(&config, "Name").map(|n| n.trim_start_matches('/').to_string()),
            image_ref: text(&config, "Image"),
            image,
            created: text(&config, "Created"),
            runtime: text(&host, "Runtime").or_else(|| Some("runc".into())),
            ..Default::default()
        };
        c.hint(c.image.clone());
        c.hint(c.image_ref.clone());
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_crio_and_containerd() {
        let cfg = br#"{"id":"abc","name":"counter","rootfsImageName":"docker.io/library/python:3","runtime":"crun",
            "rootfsImage":"4f1c0de7","createdTime":"2026-11-20T10:00:00Z","checkpointedTime":"2026-11-20T11:00:00Z","restoredTime":"0001-01-01T00:00:00Z"}"#;
        let spec = br#"{"annotations":{"io.container.manager":"libpod"}}"#;
        let c = ContainerInfo::from_dumps(Some(cfg), Some(spec)).unwrap();
        assert_eq!(c.engine.as_deref(), Some("Podman"));
        assert_eq!(c.name.as_deref(), Some("counter"));
        assert_eq!(c.image_ref.as_deref(), Some("4f1c0de7"));
        assert_eq!(c.checkpointed.as_deref(), Some("2026-11-20T11:00:00Z"));
        assert_eq!(c.image_hints(), ["docker.io/library/python:3", "4f1c0de7"]);
        let spec = br#"{"annotations":{"io.container.manager":"cri-o","io.kubernetes.cri-o.Metadata":"{\"name\":\"app\"}",
            "io.kubernetes.pod.namespace":"default","io.kubernetes.pod.name":"web-1"}}"#;
        let c = ContainerInfo::from_dumps(Some(b"{}"), Some(spec)).unwrap();
        assert_eq!(
            (c.engine.as_deref(), c.name.as_deref(), c.pod.as_deref()),
            (Some("CRI-O"), Some("app"), Some("web-1"))
        );
        // containerd's CRI plugin: no manager annotation.
        let cfg = br#"{"id":"f00d","name":"app_web-1_default_uid_0","rootfsImage":"docker.io/library/nginx:1.27",
            "rootfsImageRef":"sha256:aaaa","rootfsImageName":"docker.io/library/nginx:1.27","runtime":"io.containerd.runc.v2"}"#;
        let spec = br#"{"annotations":{"io.kubernetes.cri.container-name":"app","io.kubernetes.cri.sandbox-name":"web-1",
            "io.kubernetes.cri.sandbox-namespace":"prod"}}"#;
        let c = ContainerInfo::from_dumps(Some(cfg), Some(spec)).unwrap();
        assert_eq!(
            (
                c.engine.as_deref(),
                c.name.as_deref(),
                c.pod.as_deref(),
                c.namespace.as_deref(),
                c.image_ref.as_deref()
            ),
            (
                Some("containerd"),
                Some("app"),
                Some("web-1"),
                Some("prod"),
                Some("sha256:aaaa")
            )
        );
        assert!(ContainerInfo::from_dumps(None, Some(b"not json")).is_none());
        // No spec: no engine is guessed.
        let c = ContainerInfo::from_dumps(Some(b"{\"name\":\"x\"}"), None).unwrap();
        assert_eq!(c.engine, None);
    }

    #[test]
    fn docker_layout() {
        let dir = tempfile::tempdir().unwrap();
        let id = "ab".repeat(32);
        let ck = dir
            .path()
            .join("containers")
            .join(&id)
            .join("checkpoints/cp1");
        std::fs::create_dir_all(&ck).unwrap();
        assert!(ContainerInfo::from_images_dir(&ck).is_none());
        std::fs::write(ck.join("descriptors.json"), b"[]").unwrap();
        let c = ContainerInfo::from_images_dir(&ck).unwrap();
        assert_eq!(c.engine.as_deref(), Some("Docker"));
        assert_eq!(c.id.as_deref(), Some(id.as_str()));
        std::fs::write(
            dir.path().join("containers").join(&id).join("config.v2.json"),
            br#"{"Name":"/victim","Image":"sha256:1234","Created":"2026-11-20T10:00:00Z","Config":{"Image":"victim:1"}}"#,
        )
        .unwrap();
        let c = ContainerInfo::from_images_dir(&ck).unwrap();
        assert_eq!(
            (
                c.name.as_deref(),
                c.image.as_deref(),
                c.image_ref.as_deref()
            ),
            (Some("victim"), Some("victim:1"), Some("sha256:1234"))
        );
        // Elsewhere, a directory with descriptors.json says nothing.
        let other = dir.path().join("elsewhere");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("descriptors.json"), b"[]").unwrap();
        assert!(ContainerInfo::from_images_dir(&other).is_none());
    }
}
