//! What a container checkpoint archive says about its container:
//! `config.dump` (the engine's container config) and `spec.dump` (the OCI
//! runtime spec, whose annotations name the engine, pod and namespace).

use serde::Serialize;
use serde_json::Value;

/// Container facts from a checkpoint archive; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// "Podman", "CRI-O" or "containerd".
    pub engine: Option<String>,
    /// Container name.
    pub name: Option<String>,
    /// Container id.
    pub id: Option<String>,
    /// Image the container ran.
    pub image: Option<String>,
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
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() && !s.starts_with("0001-01-01") => Some(s.clone()),
        _ => None,
    }
}

impl ContainerInfo {
    /// Reads the facts from the two files' contents (either may be absent
    /// or unparsable; what can be read is kept).
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
        let ann = spec.get("annotations").cloned().unwrap_or(Value::Null);
        let mut c = ContainerInfo {
            name: text(&config, "name"),
            id: text(&config, "id"),
            image: text(&config, "rootfsImageName").or_else(|| text(&config, "rootfsImage")),
            runtime: text(&config, "runtime"),
            created: text(&config, "createdTime"),
            checkpointed: text(&config, "checkpointedTime"),
            ..Default::default()
        };
        match text(&ann, "io.container.manager").as_deref() {
            Some("libpod") => c.engine = Some("Podman".into()),
            Some("cri-o") => {
                c.engine = Some("CRI-O".into());
                let meta: Value = text(&ann, "io.kubernetes.cri-o.Metadata")
                    .and_then(|m| serde_json::from_str(&m).ok())
                    .unwrap_or(Value::Null);
                c.name = text(&meta, "name").or(c.name);
                c.created = text(&ann, "io.kubernetes.cri-o.Created").or(c.created);
                c.image = text(&ann, "io.kubernetes.cri-o.ImageName").or(c.image);
                c.namespace = text(&ann, "io.kubernetes.pod.namespace");
                c.pod = text(&ann, "io.kubernetes.pod.name");
            }
            _ if text(&ann, "io.kubernetes.cri.container-name").is_some() => {
                c.engine = Some("containerd".into());
                c.name = text(&ann, "io.kubernetes.cri.container-name");
                c.image = text(&ann, "io.kubernetes.cri.image-name").or(c.image);
                c.namespace = text(&ann, "io.kubernetes.cri.sandbox-namespace");
                c.pod = text(&ann, "io.kubernetes.cri.sandbox-name");
            }
            _ => {}
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_and_crio() {
        let cfg = br#"{"id":"abc","name":"counter","rootfsImageName":"docker.io/library/python:3","runtime":"crun",
            "createdTime":"2026-11-20T10:00:00Z","checkpointedTime":"2026-11-20T11:00:00Z","restoredTime":"0001-01-01T00:00:00Z"}"#;
        let spec = br#"{"annotations":{"io.container.manager":"libpod"}}"#;
        let c = ContainerInfo::from_dumps(Some(cfg), Some(spec)).unwrap();
        assert_eq!(c.engine.as_deref(), Some("Podman"));
        assert_eq!(c.name.as_deref(), Some("counter"));
        assert_eq!(c.checkpointed.as_deref(), Some("2026-11-20T11:00:00Z"));
        let spec = br#"{"annotations":{"io.container.manager":"cri-o","io.kubernetes.cri-o.Metadata":"{\"name\":\"app\"}",
            "io.kubernetes.pod.namespace":"default","io.kubernetes.pod.name":"web-1"}}"#;
        let c = ContainerInfo::from_dumps(Some(b"{}"), Some(spec)).unwrap();
        assert_eq!(
            (c.engine.as_deref(), c.name.as_deref(), c.pod.as_deref()),
            (Some("CRI-O"), Some("app"), Some("web-1"))
        );
        assert!(ContainerInfo::from_dumps(None, Some(b"not json")).is_none());
    }
}
