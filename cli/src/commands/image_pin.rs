//! `stack deploy --resolve-image`: pinning a stack's images to the digest
//! their tag names now, as docker's daemon does for `docker stack deploy`.
//!
//! shoal's agents pull the image reference of the spec as it is, and take
//! an image they already hold under that name without asking the registry
//! again. A tag alone therefore runs whatever each node pulled first; a
//! reference pinned to a digest (`web:v1@sha256:...`) runs the same bytes
//! on every node, and a new digest makes every node pull. The CLI asks the
//! registry (with the credentials `shoal login` stored, over HTTPS except
//! for the registries in `SHOAL_INSECURE_REGISTRIES`); the compose file's
//! reference stays in the service's `com.docker.stack.image` label, which
//! `changed` and `never` compare against.

use std::time::Duration;

use clap::ValueEnum;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use shoal_proto::types::v1::{Service, ServiceSpec};

use crate::compose::LABEL_IMAGE;
use crate::registry_auth;

/// Registries the CLI reaches over plain HTTP (`host:port`, comma
/// separated), as the agents' `--insecure-registry`.
pub const INSECURE_REGISTRIES_ENV: &str = "SHOAL_INSECURE_REGISTRIES";

/// How long one registry may take to name a digest.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// docker's `--resolve-image` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolveImage {
    /// Pin every service's image to its digest now
    Always,
    /// Pin the images of new services and of services whose image changed;
    /// keep the deployed pin of the others
    Changed,
    /// Ask no registry: a service whose image is unchanged keeps its
    /// deployed pin, the others deploy the reference as written
    Never,
}

/// What to do with one service's image.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Resolve,
    /// The deployed (pinned) image, for the same reference as before.
    Keep(String),
    AsWritten,
}

/// docker's rule (`deployServices`): the deployed service's image is kept
/// when the compose reference is the one it was deployed from (its label).
fn step(mode: ResolveImage, image: &str, deployed: Option<&ServiceSpec>) -> Step {
    if image.contains('@') {
        // Pinned in the file already.
        return Step::AsWritten;
    }
    let unchanged = deployed.and_then(|spec| {
        let from = spec.labels.get(LABEL_IMAGE)?;
        let running = &spec.task.as_ref()?.container.as_ref()?.image;
        (from == image).then(|| running.clone())
    });
    match (mode, unchanged) {
        (ResolveImage::Always, _) => Step::Resolve,
        (_, Some(running)) => Step::Keep(running),
        (ResolveImage::Changed, None) => Step::Resolve,
        (ResolveImage::Never, None) => Step::AsWritten,
    }
}

fn image_of(spec: &mut ServiceSpec) -> Option<&mut String> {
    Some(&mut spec.task.as_mut()?.container.as_mut()?.image)
}

/// Pins the images of `specs` as `mode` says, against the stack's
/// `deployed` services; returns docker's warning for each image no
/// registry would resolve (those deploy as written, as with docker).
/// The registries are asked all at once.
pub async fn pin(
    specs: &mut [ServiceSpec],
    deployed: &[Service],
    mode: ResolveImage,
) -> Vec<String> {
    let insecure = insecure_registries();
    let client = registry_client(insecure.clone());
    let mut queries = tokio::task::JoinSet::new();
    for (index, spec) in specs.iter_mut().enumerate() {
        let current = deployed
            .iter()
            .filter_map(|s| s.spec.as_ref())
            .find(|s| s.name == spec.name);
        let Some(image) = image_of(spec) else {
            continue;
        };
        match step(mode, image, current) {
            Step::AsWritten => {}
            Step::Keep(running) => *image = running,
            Step::Resolve => {
                let (client, insecure) = (client.clone(), insecure.clone());
                let image = image.clone();
                queries.spawn(async move {
                    let digest = digest(&client, &insecure, &image).await;
                    (index, image, digest)
                });
            }
        }
    }
    let mut warnings = Vec::new();
    let mut answers = queries.join_all().await;
    answers.sort_by_key(|(index, _, _)| *index);
    for (index, image, digest) in answers {
        match digest {
            Ok(digest) => {
                if let Some(pinned) = image_of(&mut specs[index]) {
                    *pinned = format!("{image}@{digest}");
                }
            }
            Err(why) => warnings.push(format!(
                "image {image} could not be accessed on a registry to record its digest \
                 ({why}). Each node will access {image} independently, possibly leading to \
                 different nodes running different versions of the image."
            )),
        }
    }
    warnings
}

/// The registries `SHOAL_INSECURE_REGISTRIES` names.
fn insecure_registries() -> Vec<String> {
    std::env::var(INSECURE_REGISTRIES_ENV)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

fn registry_client(insecure: Vec<String>) -> oci_client::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure),
        connect_timeout: Some(QUERY_TIMEOUT),
        read_timeout: Some(QUERY_TIMEOUT),
        ..ClientConfig::default()
    })
}

/// The digest `image`'s tag names in its registry now.
async fn digest(
    client: &oci_client::Client,
    insecure: &[String],
    image: &str,
) -> Result<String, String> {
    let reference: Reference = image
        .parse()
        .map_err(|e| format!("invalid reference: {e}"))?;
    let server = registry_auth::registry_of(image);
    let auth = match registry_auth::get(&server)? {
        Some(c) => RegistryAuth::Basic(c.username, c.password),
        None => RegistryAuth::Anonymous,
    };
    let query = client.fetch_manifest_digest(&reference, &auth);
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(Ok(digest)) => Ok(digest),
        Ok(Err(e)) => {
            let mut why = causes(&e);
            let registry = reference.registry();
            if matches!(e, OciDistributionError::RequestError(_))
                && !insecure.iter().any(|r| r == registry)
            {
                why.push_str(&format!(
                    "; a registry served over plain HTTP must be listed in \
                     {INSECURE_REGISTRIES_ENV}"
                ));
            }
            Err(why)
        }
        Err(_) => Err(format!(
            "{} did not answer within {}s",
            reference.registry(),
            QUERY_TIMEOUT.as_secs()
        )),
    }
}

/// An error and its causes on one line (the transport's own words are in
/// the causes: a TLS refusal, a connection refused).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{ContainerSpec, TaskSpec};

    fn deployed(from: &str, running: &str) -> ServiceSpec {
        ServiceSpec {
            name: "st_web".into(),
            labels: [(LABEL_IMAGE.to_string(), from.to_string())].into(),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: running.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn each_mode_resolves_what_docker_resolves() {
        use ResolveImage::*;
        let pinned = "web:v1@sha256:aaa";
        let same = deployed("web:v1", pinned);
        let other = deployed("web:v0", "web:v0@sha256:bbb");
        // always: every image, new or not.
        assert_eq!(step(Always, "web:v1", None), Step::Resolve);
        assert_eq!(step(Always, "web:v1", Some(&same)), Step::Resolve);
        // changed: new services and changed images; the others keep their pin.
        assert_eq!(step(Changed, "web:v1", None), Step::Resolve);
        assert_eq!(step(Changed, "web:v1", Some(&other)), Step::Resolve);
        assert_eq!(
            step(Changed, "web:v1", Some(&same)),
            Step::Keep(pinned.into())
        );
        // never: no registry; an unchanged image still keeps its pin, so
        // deploying the same file again changes nothing.
        assert_eq!(step(Never, "web:v1", None), Step::AsWritten);
        assert_eq!(step(Never, "web:v1", Some(&other)), Step::AsWritten);
        assert_eq!(
            step(Never, "web:v1", Some(&same)),
            Step::Keep(pinned.into())
        );
        // A reference pinned in the file is left as it is.
        assert_eq!(step(Always, "web@sha256:ccc", None), Step::AsWritten);
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_a_warning_and_the_image_deploys_as_written() {
        // Nothing listens on port 9 of loopback: the query fails at once.
        let mut specs = vec![deployed("127.0.0.1:9/web:v1", "127.0.0.1:9/web:v1")];
        specs[0].name = "st_new".into();
        let warnings = pin(&mut specs, &[], ResolveImage::Always).await;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "image 127.0.0.1:9/web:v1 could not be accessed on a registry to record its digest"
            ),
            "{warnings:?}"
        );
        let image = &specs[0]
            .task
            .as_ref()
            .unwrap()
            .container
            .as_ref()
            .unwrap()
            .image;
        assert_eq!(image, "127.0.0.1:9/web:v1");
    }
}
