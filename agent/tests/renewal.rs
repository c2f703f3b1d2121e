//! The agent's renewal loop against a real manager (a one-node lab): once
//! the clock says a certificate has passed its renewal point, the loop
//! renews it through the manager, keeps the node's identity, saves it where
//! the node's daemons read it and hands it to them; a fresh certificate is
//! left alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use shoal_agent::renewal::{self, Wanted};
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::require_root;
use shoal_identity::live::LiveIdentity;
use shoal_identity::NodeIdentity;
use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::control::v1::ListNodesRequest;

#[test]
fn a_certificate_past_its_renewal_point_is_renewed_saved_and_reloaded() {
    require_root();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lab = Lab::up(LabConfig {
        images: false,
        replace: true,
        ..LabConfig::new("t-agent-renew")
    })
    .unwrap_or_else(|e| panic!("lab up: {e}"));
    let manager = format!("{}:4242", lab.host_addr("m1").expect("m1"));
    // A copy of m1's identity: the lab's own agent keeps renewing the
    // original on its own schedule.
    let node_dir = tempfile::tempdir().expect("tempdir");
    let original = NodeIdentity::load(&lab.root().join("m1/node")).expect("m1's identity");
    original.save(node_dir.path()).expect("copy");
    let (_, not_after) = shoal_identity::validity(&original.cert_pem).expect("validity");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let live = LiveIdentity::new(node_dir.path(), original.clone());
        let (_wanted_tx, wanted) = tokio::sync::watch::channel(Wanted::default());
        // The first reading says the certificate expires in a second;
        // every later one is the real time.
        let moved_ahead = AtomicBool::new(false);
        let clock = move || match moved_ahead.swap(true, Ordering::SeqCst) {
            false => not_after - Duration::from_secs(1),
            true => SystemTime::now(),
        };
        let renewer = tokio::spawn(renewal::run_with_clock(
            live.clone(),
            node_dir.path().to_path_buf(),
            manager.clone(),
            wanted,
            clock,
        ));

        let deadline = Instant::now() + Duration::from_secs(10);
        while live.current().cert_pem == original.cert_pem {
            assert!(Instant::now() < deadline, "not renewed within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let renewed = live.current();
        assert_eq!(
            renewed.peer, original.peer,
            "renewal keeps node, role and cluster"
        );
        assert_ne!(
            renewed.key_pem, original.key_pem,
            "renewal takes a fresh key"
        );
        let on_disk = NodeIdentity::load(node_dir.path()).expect("saved identity");
        assert_eq!(on_disk.cert_pem, renewed.cert_pem, "the renewal is saved");
        let (_, renewed_until) = shoal_identity::validity(&renewed.cert_pem).expect("validity");
        assert!(
            renewed_until >= not_after,
            "the renewed certificate ends earlier"
        );
        // It is a working identity: the manager accepts it.
        let channel = shoal_identity::connect(&manager, &renewed)
            .await
            .expect("connect with the renewed certificate");
        ControlClient::new(channel)
            .list_nodes(ListNodesRequest {})
            .await
            .expect("list nodes with the renewed certificate");

        // A fresh certificate waits for its renewal point (weeks away).
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            live.current().cert_pem,
            renewed.cert_pem,
            "a fresh certificate was renewed again"
        );
        renewer.abort();
    });
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
