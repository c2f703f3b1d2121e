//! Root CA rotation against a real `shoal-manager` process, the test playing
//! the node's agent: the session announces the new trust, renewal hands out
//! a new-root certificate with the cross-signed root, the manager's TLS
//! server switches to the renewed identity without a restart, the rotation
//! completes once the node is back on its new certificate, and the old root
//! is refused from then on.

use std::time::Duration;

use shoal_identity::trust;
use shoal_identity::NodeIdentity;
use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::control::v1::*;
use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::*;
use shoal_proto::types::v1::NodeDescription;
use tonic::Streaming;

mod common;

use common::{free_port, renew, wait_for, ManagerProcess};

/// Opens the node's session as its agent does; returns the stream and the
/// trust of the first message.
async fn session(addr: &str, identity: &NodeIdentity) -> (Streaming<SessionMessage>, NodeTrust) {
    let channel = shoal_identity::connect(addr, identity).await.unwrap();
    let mut stream = DispatcherClient::new(channel)
        .session(SessionRequest {
            description: Some(NodeDescription {
                hostname: "m1".into(),
                trust_digest: trust::bundle_digest(&identity.ca_pem).unwrap(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    (stream, first.trust.unwrap())
}

/// Whether a client trusting only `roots_pem` completes a TLS handshake with
/// the manager (which shows what the server presents right now).
async fn server_trusted_by(addr: &str, identity: &NodeIdentity, roots_pem: &str) -> bool {
    let probe = NodeIdentity {
        ca_pem: roots_pem.to_string(),
        ..identity.clone()
    };
    match shoal_identity::connect(addr, &probe).await {
        Ok(channel) => ControlClient::new(channel)
            .get_root_ca(GetRootCaRequest {})
            .await
            .is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_rotation_renews_the_node_reloads_the_server_and_retires_the_old_root() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let manager = ManagerProcess::start(dir.path(), port);
    let outcome = tokio::time::timeout(Duration::from_secs(120), rotation(&manager, port)).await;
    let log = std::fs::read_to_string(dir.path().join("manager.log")).unwrap_or_default();
    assert!(outcome.is_ok(), "the scenario hung; manager log:\n{log}");
}

async fn rotation(manager: &ManagerProcess, port: u16) {
    let addr = format!("127.0.0.1:{port}");
    let dir = &manager.dir;
    let mut control = manager.control().await;
    control
        .init_cluster(InitClusterRequest {
            advertise_addr: "127.0.0.1".into(),
            hostname: "m1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let node_dir = dir.join("node");
    let original = NodeIdentity::load(&node_dir).unwrap();
    let old_root = original.ca_pem.clone();
    let old_tokens = control
        .get_join_tokens(GetJoinTokensRequest {})
        .await
        .unwrap()
        .into_inner();
    let (_stream, trust_before) = wait_for("the manager's TCP server", async || {
        tokio::time::timeout(Duration::from_secs(2), session(&addr, &original))
            .await
            .ok()
    })
    .await;
    assert!(trust::same_bundle(&trust_before.trust_pem, &old_root));
    let status = control
        .get_root_ca(GetRootCaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.rotating);
    assert_eq!((status.nodes, status.nodes_renewed), (1, 1), "{status:?}");

    // A viewer bundle may read the CA but not rotate it.
    let (viewer_key, csr_pem) = shoal_identity::generate_key_and_csr().unwrap();
    let bundle = control
        .create_client_bundle(CreateClientBundleRequest {
            name: "dash".into(),
            role: "viewer".into(),
            csr_pem,
        })
        .await
        .unwrap()
        .into_inner();
    let viewer = NodeIdentity::new(viewer_key, bundle.cert_pem, bundle.root_ca_pem).unwrap();
    let mut as_viewer = ControlClient::new(shoal_identity::connect(&addr, &viewer).await.unwrap());
    as_viewer.get_root_ca(GetRootCaRequest {}).await.unwrap();
    let refused = as_viewer
        .rotate_root_ca(RotateRootCaRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("the CA"),
        "{}",
        refused.message()
    );

    // Rotate: the session announces the new trust at once.
    let started = control
        .rotate_root_ca(RotateRootCaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(started.rotating);
    assert_eq!(started.nodes_renewed, 0);
    assert_eq!(started.stale_bundles, ["dash"]);
    let new_root = started.new_root_ca_pem.clone();
    let (stream, announced) = session(&addr, &original).await;
    assert_eq!(announced.issuer_pem, new_root);
    assert!(trust::same_bundle(
        &announced.trust_pem,
        &trust::join_pem(&[&old_root, &new_root])
    ));

    // Renewal: a new-root leaf with the cross-signed root, which a peer
    // trusting only the old root accepts.
    let renewed = renew(&addr, &original).await;
    let chain = renewed.chain().unwrap();
    assert_eq!(chain.len(), 2);
    assert!(trust::issued_by(&chain[0], &new_root));
    trust::verify_server_chain(&chain, &old_root).expect("old-root peers accept it");
    assert!(trust::same_bundle(&renewed.ca_pem, &announced.trust_pem));

    // The manager still presents its startup certificate; once the renewed
    // identity is in the node directory it presents the new one, no restart.
    assert!(!server_trusted_by(&addr, &renewed, &new_root).await);
    renewed.save(&node_dir).unwrap();
    wait_for(
        "the server to present the renewed certificate",
        async || {
            server_trusted_by(&addr, &renewed, &new_root)
                .await
                .then_some(())
        },
    )
    .await;

    // Back on the new certificate, the node counts as renewed and the
    // rotation completes: new root, new tokens, the old root's bundle revoked.
    drop(stream);
    let (_stream, _) = session(&addr, &renewed).await;
    let done = wait_for("the rotation to complete", async || {
        let s = control
            .get_root_ca(GetRootCaRequest {})
            .await
            .ok()?
            .into_inner();
        (!s.rotating).then_some(s)
    })
    .await;
    assert_eq!(done.root_ca_pem, new_root);
    let tokens = control
        .get_join_tokens(GetJoinTokensRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_ne!(tokens.worker, old_tokens.worker);
    let digest = shoal_identity::join::ca_digest(&new_root).unwrap();
    assert!(tokens.worker.contains(&digest), "{}", tokens.worker);
    let bundles = control
        .list_client_bundles(ListClientBundlesRequest {})
        .await
        .unwrap()
        .into_inner()
        .bundles;
    assert!(bundles.iter().all(|b| b.revoked), "{bundles:?}");

    // The node renews once more for the trust without the old root.
    let (_stream, trust_after) = session(&addr, &renewed).await;
    assert!(trust::same_bundle(&trust_after.trust_pem, &new_root));
    let last = renew(&addr, &renewed).await;
    assert_eq!(
        last.chain().unwrap().len(),
        1,
        "no cross-signed root any more"
    );
    assert!(trust::same_bundle(&last.ca_pem, &new_root));
    last.save(&node_dir).unwrap();
    let (_stream, _) = session(&addr, &last).await;
    let settled = control
        .get_root_ca(GetRootCaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settled.nodes_trusting, 1, "{settled:?}");
    assert!(settled.pending.is_empty(), "{settled:?}");

    // The manager now refuses certificates of the old root (the client
    // trusts the server's new root: the refusal is the server's).
    let old_leaf = NodeIdentity {
        ca_pem: new_root.clone(),
        ..original.clone()
    };
    wait_for("the server to drop the old root", async || {
        let channel = shoal_identity::connect(&addr, &old_leaf).await.ok();
        let refused = match channel {
            None => true,
            Some(c) => ControlClient::new(c)
                .list_nodes(ListNodesRequest {})
                .await
                .is_err(),
        };
        refused.then_some(())
    })
    .await;
    let mut as_node = ControlClient::new(shoal_identity::connect(&addr, &last).await.unwrap());
    as_node.list_nodes(ListNodesRequest {}).await.unwrap();
}
