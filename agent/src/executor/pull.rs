//! Image pull into containerd: registry → content store → snapshot chain → image record.

use super::content::WriteError;
use super::healthcheck::{self, ImageHealthcheck};
use super::lease::Lease;
use super::{Executor, ExecutorError, Result};
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, GetImageRequest, Image, UpdateImageRequest,
};
use containerd_client::types::Descriptor;
use futures::StreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{
    OciDescriptor, OciImageIndex, OciImageManifest, IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use oci_spec::image::{Arch, ImageConfiguration, Os};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// An image present in containerd, ready to run.
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The normalised reference, which is also containerd's image name
    /// (`docker.io/library/busybox:latest`, `10.0.0.2:5000/web:v1`).
    pub name: String,
    /// What the name resolves to: the index for multi-platform images, else the manifest.
    pub target_digest: String,
    /// The linux/amd64 image manifest.
    pub manifest_digest: String,
    pub config_digest: String,
    pub config: ImageConfiguration,
    /// The image's `HEALTHCHECK` (docker's `config.Healthcheck`), if it has one.
    pub healthcheck: Option<ImageHealthcheck>,
    /// The chain id of the top layer: the snapshot containers are prepared on.
    pub chain_id: String,
    /// False when the image was already present and nothing was downloaded.
    pub downloaded: bool,
}

/// Normalise a user's image reference the way Docker does.
pub fn normalize_reference(image: &str) -> Result<String> {
    Ok(parse_reference(image)?.whole())
}

fn parse_reference(image: &str) -> Result<Reference> {
    image.parse().map_err(|e| ExecutorError::Reference {
        reference: image.to_string(),
        message: format!("{e}"),
    })
}

/// Chain ids per the OCI image spec: `chain[0] = diff[0]`,
/// `chain[n] = sha256(chain[n-1] + " " + diff[n])`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {diff_id}").as_bytes()))
            ),
        };
        chain.push(next);
    }
    chain
}

/// One manifest as the registry (or the content store) served it.
struct RawManifest {
    media_type: String,
    digest: String,
    bytes: Vec<u8>,
}

impl RawManifest {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as i64,
            annotations: HashMap::new(),
        }
    }
}

/// The media type a manifest declares, or the one its shape implies.
fn media_type_of(bytes: &[u8]) -> std::result::Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
    if let Some(media_type) = value.get("mediaType").and_then(|m| m.as_str()) {
        return Ok(media_type.to_string());
    }
    Ok(if value.get("manifests").is_some() {
        OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()
    } else {
        OCI_IMAGE_MEDIA_TYPE.to_string()
    })
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_IMAGE_INDEX_MEDIA_TYPE || media_type == IMAGE_MANIFEST_LIST_MEDIA_TYPE
}

/// Index of the linux/amd64 entry.
fn pick_platform(index: &OciImageIndex) -> Option<usize> {
    index.manifests.iter().position(|entry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == Os::Linux && p.architecture == Arch::Amd64)
    })
}

/// The registry's own words for a failure: for `manifest unknown` and friends, the messages of
/// the error envelope; otherwise the error and its causes.
fn registry_message(error: &OciDistributionError) -> String {
    match error {
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .map(|e| {
                if e.message.is_empty() {
                    format!("{:?}", e.code)
                } else {
                    e.message.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        OciDistributionError::ServerError { code, message, .. } => {
            format!("HTTP {code}: {}", message.trim())
        }
        OciDistributionError::UnauthorizedError { .. } => "unauthorized".to_string(),
        other => {
            let mut message = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            message
        }
    }
}

const GC_CONTENT: &str = "containerd.io/gc.ref.content";

impl Executor {
    /// Pull `image` (with optional registry credentials) into containerd, unless it is already
    /// there. Errors name the image and the registry and carry the registry's message, e.g.
    /// `pull web:v9 from 10.0.0.2:5000: manifest unknown`.
    pub async fn pull(&self, image: &str, auth: Option<(&str, &str)>) -> Result<PulledImage> {
        let reference = parse_reference(image)?;
        let name = reference.whole();
        if let Some(present) = self.local_image(&name).await? {
            return Ok(present);
        }
        let auth = match auth {
            Some((user, password)) => RegistryAuth::Basic(user.to_string(), password.to_string()),
            None => RegistryAuth::Anonymous,
        };
        let pull_error = |message: String| ExecutorError::Pull {
            image: match (reference.tag(), reference.digest()) {
                (_, Some(digest)) => format!("{}@{digest}", reference.repository()),
                (Some(tag), None) => format!("{}:{tag}", reference.repository()),
                (None, None) => reference.repository().to_string(),
            },
            registry: reference.registry().to_string(),
            message,
        };
        let lease = self.create_lease("pull").await?;
        let pulled = self
            .pull_leased(&lease, &reference, &name, &auth)
            .await
            .map_err(|e| match e {
                PullError::Executor(e) => pull_error(e.to_string()),
                PullError::Message(message) => pull_error(message),
            });
        // The image record (or failure) is final now; drop the lease either way.
        let deleted = self.delete_lease(lease).await;
        let pulled = pulled?;
        deleted?;
        Ok(pulled)
    }

    async fn pull_leased(
        &self,
        lease: &Lease,
        reference: &Reference,
        name: &str,
        auth: &RegistryAuth,
    ) -> Result<PulledImage, PullError> {
        let own;
        let registry = match auth {
            RegistryAuth::Anonymous => &*self.registry,
            _ => {
                own = super::registry_client(&self.config);
                &own
            }
        };
        let (bytes, digest) = registry
            .pull_manifest_raw(reference, auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| PullError::Message(registry_message(&e)))?;
        let top = RawManifest {
            media_type: media_type_of(&bytes).map_err(PullError::Message)?,
            digest,
            bytes: bytes.to_vec(),
        };
        let (index, manifest) = if is_index(&top.media_type) {
            let index: OciImageIndex = serde_json::from_slice(&top.bytes)
                .map_err(|e| PullError::Message(format!("parse image index: {e}")))?;
            let position = pick_platform(&index).ok_or_else(|| {
                PullError::Message("no linux/amd64 image in the index".to_string())
            })?;
            let entry = &index.manifests[position];
            let (bytes, digest) = registry
                .pull_manifest_raw(
                    &reference.clone_with_digest(entry.digest.clone()),
                    auth,
                    ACCEPTED_MANIFESTS,
                )
                .await
                .map_err(|e| PullError::Message(registry_message(&e)))?;
            let manifest = RawManifest {
                media_type: media_type_of(&bytes).map_err(PullError::Message)?,
                digest,
                bytes: bytes.to_vec(),
            };
            (Some((top, position)), manifest)
        } else {
            (None, top)
        };
        let parsed: OciImageManifest = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| PullError::Message(format!("parse image manifest: {e}")))?;

        let mut config_bytes = Vec::new();
        registry
            .pull_blob(reference, &parsed.config, &mut config_bytes)
            .await
            .map_err(|e| PullError::Message(registry_message(&e)))?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
            .map_err(|e| PullError::Message(format!("parse image config: {e}")))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != parsed.layers.len() {
            return Err(PullError::Message(format!(
                "manifest has {} layers but config lists {} diff ids",
                parsed.layers.len(),
                diff_ids.len()
            )));
        }
        let chain = chain_ids(&diff_ids);

        for (layer, diff_id) in parsed.layers.iter().zip(&diff_ids) {
            self.fetch_layer(registry, lease, reference, layer, diff_id)
                .await?;
        }
        let chain_id = self
            .unpack(lease, &parsed.layers, &diff_ids, &chain)
            .await?;

        let snapshot_label = format!("containerd.io/gc.ref.snapshot.{}", self.config.snapshotter);
        let mut config_labels = HashMap::new();
        if let Some(top) = &chain_id {
            config_labels.insert(snapshot_label, top.clone());
        }
        self.store_small(lease, &parsed.config.digest, &config_bytes, config_labels)
            .await?;

        let mut manifest_labels =
            HashMap::from([(format!("{GC_CONTENT}.config"), parsed.config.digest.clone())]);
        for (i, layer) in parsed.layers.iter().enumerate() {
            manifest_labels.insert(format!("{GC_CONTENT}.l.{i}"), layer.digest.clone());
        }
        self.store_small(lease, &manifest.digest, &manifest.bytes, manifest_labels)
            .await?;
        let target = match &index {
            Some((index, position)) => {
                let labels = HashMap::from([(
                    format!("{GC_CONTENT}.m.{position}"),
                    manifest.digest.clone(),
                )]);
                self.store_small(lease, &index.digest, &index.bytes, labels)
                    .await?;
                index.descriptor()
            }
            None => manifest.descriptor(),
        };
        self.register_image(name, target.clone()).await?;
        Ok(PulledImage {
            name: name.to_string(),
            target_digest: target.digest,
            manifest_digest: manifest.digest,
            config_digest: parsed.config.digest.clone(),
            config,
            healthcheck: healthcheck::from_config_blob(&config_bytes),
            chain_id: chain_id.unwrap_or_default(),
            downloaded: true,
        })
    }

    async fn store_small(
        &self,
        lease: &Lease,
        digest: &str,
        bytes: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<(), PullError> {
        let data = futures::stream::iter([Ok::<_, String>(bytes)]);
        self.write_blob(lease, digest, bytes.len() as i64, labels, data)
            .await
            .map_err(|e| PullError::Message(format!("store {digest}: {e}")))
    }

    async fn fetch_layer(
        &self,
        registry: &oci_client::Client,
        lease: &Lease,
        reference: &Reference,
        layer: &OciDescriptor,
        diff_id: &str,
    ) -> Result<(), PullError> {
        if self.content_exists(&layer.digest).await? {
            return Ok(());
        }
        let stream = registry
            .pull_blob_stream(reference, layer)
            .await
            .map_err(|e| PullError::Message(registry_message(&e)))?;
        let data = stream.map(|chunk| chunk.map_err(|e| format!("download: {e}")));
        let labels = HashMap::from([(
            "containerd.io/uncompressed".to_string(),
            diff_id.to_string(),
        )]);
        self.write_blob(lease, &layer.digest, layer.size, labels, data)
            .await
            .map_err(|e| match e {
                WriteError::Source(message) => {
                    PullError::Message(format!("layer {}: {message}", layer.digest))
                }
                other => PullError::Message(format!("layer {}: {other}", layer.digest)),
            })
    }

    pub(crate) async fn snapshot_exists(&self, key: &str) -> Result<bool> {
        match self
            .snapshots()
            .stat(self.request(
                StatSnapshotRequest {
                    snapshotter: self.config.snapshotter.clone(),
                    key: key.to_string(),
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(ExecutorError::containerd("stat snapshot", key)(status)),
        }
    }

    /// Apply each layer on its parent and commit it under its chain id, skipping what is
    /// already committed. Returns the top chain id (`None` for an image without layers).
    async fn unpack(
        &self,
        lease: &Lease,
        layers: &[OciDescriptor],
        diff_ids: &[String],
        chain: &[String],
    ) -> Result<Option<String>, PullError> {
        let mut parent = String::new();
        for ((layer, diff_id), chain_id) in layers.iter().zip(diff_ids).zip(chain) {
            if !self.snapshot_exists(chain_id).await? {
                self.apply_layer(lease, layer, diff_id, chain_id, &parent)
                    .await?;
            }
            parent = chain_id.clone();
        }
        Ok(chain.last().cloned())
    }

    async fn apply_layer(
        &self,
        lease: &Lease,
        layer: &OciDescriptor,
        diff_id: &str,
        chain_id: &str,
        parent: &str,
    ) -> Result<(), PullError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let key = format!("extract-{nanos}-{chain_id}");
        let mounts = self
            .snapshots()
            .prepare(self.request(
                PrepareSnapshotRequest {
                    snapshotter: self.config.snapshotter.clone(),
                    key: key.clone(),
                    parent: parent.to_string(),
                    labels: HashMap::new(),
                },
                Some(lease),
            ))
            .await
            .map_err(ExecutorError::containerd("prepare snapshot", &key))?
            .into_inner()
            .mounts;
        let applied = self
            .diff()
            .apply(self.request(
                ApplyRequest {
                    diff: Some(Descriptor {
                        media_type: layer.media_type.clone(),
                        digest: layer.digest.clone(),
                        size: layer.size,
                        annotations: HashMap::new(),
                    }),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                },
                Some(lease),
            ))
            .await;
        let outcome = match applied {
            Err(status) => Err(PullError::Message(format!(
                "unpack layer {}: {}",
                layer.digest,
                status.message()
            ))),
            Ok(response) => {
                let applied = response.into_inner().applied.unwrap_or_default();
                if applied.digest != diff_id {
                    Err(PullError::Message(format!(
                        "layer {} unpacked to {} but the config says {diff_id}",
                        layer.digest, applied.digest
                    )))
                } else {
                    match self
                        .snapshots()
                        .commit(self.request(
                            CommitSnapshotRequest {
                                snapshotter: self.config.snapshotter.clone(),
                                name: chain_id.to_string(),
                                key: key.clone(),
                                labels: HashMap::new(),
                            },
                            Some(lease),
                        ))
                        .await
                    {
                        Ok(_) => return Ok(()),
                        // Another pull committed the same layer first.
                        Err(status) if status.code() == tonic::Code::AlreadyExists => Ok(()),
                        Err(status) => Err(ExecutorError::containerd("commit snapshot", chain_id)(
                            status,
                        )
                        .into()),
                    }
                }
            }
        };
        let _ = self
            .snapshots()
            .remove(self.request(
                RemoveSnapshotRequest {
                    snapshotter: self.config.snapshotter.clone(),
                    key,
                },
                Some(lease),
            ))
            .await;
        outcome
    }

    async fn register_image(&self, name: &str, target: Descriptor) -> Result<(), PullError> {
        let image = Image {
            name: name.to_string(),
            labels: HashMap::new(),
            target: Some(target),
            created_at: None,
            updated_at: None,
        };
        let created = self
            .images()
            .create(self.request(
                CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
                None,
            ))
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::AlreadyExists => {
                self.images()
                    .update(self.request(
                        UpdateImageRequest {
                            image: Some(image),
                            update_mask: None,
                            source_date_epoch: None,
                        },
                        None,
                    ))
                    .await
                    .map_err(ExecutorError::containerd("update image", name))?;
                Ok(())
            }
            Err(status) => Err(ExecutorError::containerd("create image", name)(status).into()),
        }
    }

    /// The image named `name` if containerd has it completely: record, manifests, config and
    /// the unpacked snapshot chain. Anything missing means "not present" (pull again).
    pub(crate) async fn local_image(&self, name: &str) -> Result<Option<PulledImage>> {
        let image = match self
            .images()
            .get(self.request(
                GetImageRequest {
                    name: name.to_string(),
                },
                None,
            ))
            .await
        {
            Ok(response) => response.into_inner().image,
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => return Err(ExecutorError::containerd("get image", name)(status)),
        };
        let Some(target) = image.and_then(|i| i.target) else {
            return Ok(None);
        };
        let Some(bytes) = self.read_if_present(&target.digest).await? else {
            return Ok(None);
        };
        let corrupt = |message: String| ExecutorError::Image {
            image: name.to_string(),
            message,
        };
        let (manifest_digest, manifest_bytes) = if is_index(&target.media_type) {
            let index: OciImageIndex = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(format!("parse stored index: {e}")))?;
            let Some(position) = pick_platform(&index) else {
                return Ok(None);
            };
            let digest = index.manifests[position].digest.clone();
            let Some(bytes) = self.read_if_present(&digest).await? else {
                return Ok(None);
            };
            (digest, bytes)
        } else {
            (target.digest.clone(), bytes)
        };
        let manifest: OciImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| corrupt(format!("parse stored manifest: {e}")))?;
        let Some(config_bytes) = self.read_if_present(&manifest.config.digest).await? else {
            return Ok(None);
        };
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
            .map_err(|e| corrupt(format!("parse stored config: {e}")))?;
        let chain = chain_ids(config.rootfs().diff_ids());
        let chain_id = chain.last().cloned().unwrap_or_default();
        if !chain_id.is_empty() && !self.snapshot_exists(&chain_id).await? {
            return Ok(None);
        }
        Ok(Some(PulledImage {
            name: name.to_string(),
            target_digest: target.digest,
            manifest_digest,
            config_digest: manifest.config.digest,
            config,
            healthcheck: healthcheck::from_config_blob(&config_bytes),
            chain_id,
            downloaded: false,
        }))
    }

    async fn read_if_present(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        if !self.content_exists(digest).await? {
            return Ok(None);
        }
        self.read_blob(digest).await.map(Some)
    }
}

/// Internal: containerd failures keep their own error; everything else becomes a
/// [`ExecutorError::Pull`] naming the image and registry.
enum PullError {
    Executor(ExecutorError),
    Message(String),
}

impl From<ExecutorError> for PullError {
    fn from(e: ExecutorError) -> Self {
        PullError::Executor(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_spec() {
        let a = "sha256:a".to_string();
        let b = "sha256:b".to_string();
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(b"sha256:a sha256:b"))
        );
        assert_eq!(chain[1], expected);
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn references_are_normalised_like_docker() {
        assert_eq!(
            normalize_reference("busybox").ok().as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            normalize_reference("10.0.0.2:5000/web:v1").ok().as_deref(),
            Some("10.0.0.2:5000/web:v1")
        );
        assert!(normalize_reference("Not A Ref").is_err());
    }
}
