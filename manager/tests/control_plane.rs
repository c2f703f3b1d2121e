//! The manager as a process: `swarm init` through the local socket, a node
//! session over mTLS, scheduling and status reports, persistence across a
//! `kill -9`, and the store's encryption at rest. No containers: the test
//! plays the agent itself through the dispatcher protocol.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::control::v1::*;
use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::*;
use shoal_proto::types::v1::*;
use tonic::transport::Channel;

mod common;

use common::{free_port, wait_for, ManagerProcess};

fn web_spec(name: &str, replicas: u64, published: u32, marker: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: "registry.invalid/web:v1".into(),
                env: vec![format!("SECRET_MARKER={marker}")],
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedMode { replicas })),
        endpoint: Some(EndpointSpec {
            ports: vec![PortConfig {
                target_port: 80,
                published_port: published,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn tasks(control: &mut ControlClient<Channel>) -> Vec<Task> {
    control
        .list_tasks(ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tasks
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path);
            }
        }
    }
    hits
}

#[tokio::test]
async fn a_node_session_gets_tasks_scheduled_and_state_survives_kill_9() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut manager = ManagerProcess::start(dir.path(), port);
    let mut control = manager.control().await;

    let init = control
        .init_cluster(InitClusterRequest {
            advertise_addr: "127.0.0.1".into(),
            hostname: "node-a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let again = control.init_cluster(InitClusterRequest::default()).await;
    assert_eq!(again.unwrap_err().code(), tonic::Code::AlreadyExists);

    let marker = "marker-7f3a9c1e-plaintext";
    let service = control
        .create_service(CreateServiceRequest {
            spec: Some(web_spec("web", 3, 8080, marker)),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let clash = control
        .create_service(CreateServiceRequest {
            spec: Some(web_spec("other", 1, 8080, marker)),
        })
        .await
        .unwrap_err();
    assert_eq!(clash.code(), tonic::Code::InvalidArgument);
    assert!(
        clash
            .message()
            .contains("8080/tcp is already published by service web"),
        "{}",
        clash.message()
    );

    // The one node is not ready yet: the tasks wait, saying why (the scheduler
    // writes the reason in its pass after the allocator's).
    wait_for("3 pending tasks saying why", async || {
        let t = tasks(&mut control).await;
        (t.len() == 3
            && t.iter().all(|t| {
                t.observed_state() == TaskState::Pending
                    && t.status.as_ref().is_some_and(|s| {
                        s.err == "no suitable node (1 node not available for new tasks)"
                    })
            }))
        .then_some(t)
    })
    .await;

    // Play the node's agent: its certificate is in the node dir.
    let identity = shoal_identity::NodeIdentity::load(&dir.path().join("node")).unwrap();
    assert_eq!(identity.peer.node_id, init.node_id);
    let channel = shoal_identity::connect(&format!("127.0.0.1:{port}"), &identity)
        .await
        .unwrap();
    let mut dispatcher = DispatcherClient::new(channel);
    let mut session = dispatcher
        .session(SessionRequest {
            description: Some(NodeDescription {
                hostname: "node-a".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let first = session.message().await.unwrap().unwrap();
    let session_id = first.session_id.clone();
    let mut assigned: Vec<Task> = first.assignments.unwrap().updated;
    while assigned.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(10), session.message())
            .await
            .expect("assignments within 10 s")
            .unwrap()
            .unwrap();
        for t in next.assignments.unwrap().updated {
            assigned.retain(|a| a.meta != t.meta);
            assigned.push(t);
        }
    }
    assert!(assigned.iter().all(|t| t.node_id == init.node_id));
    let mut addresses: Vec<String> = assigned
        .iter()
        .map(|t| t.networks[0].address.clone())
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(
        addresses.len(),
        3,
        "every task has its own address: {addresses:?}"
    );

    let updates = assigned
        .iter()
        .map(|t| TaskStatusUpdate {
            task_id: t.meta.as_ref().unwrap().id.clone(),
            status: Some(TaskStatus {
                state: TaskState::Running as i32,
                timestamp: 1,
                message: "started".into(),
                ..Default::default()
            }),
        })
        .collect();
    dispatcher
        .update_task_status(UpdateTaskStatusRequest {
            session_id: session_id.clone(),
            updates,
        })
        .await
        .unwrap();
    let running = tasks(&mut control).await;
    assert!(running
        .iter()
        .all(|t| t.observed_state() == TaskState::Running));
    let nodes = control
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0].status.as_ref().unwrap().state,
        NodeState::Ready as i32
    );

    // A stale report (backwards in the state machine) changes nothing.
    let first_task = running[0].meta.as_ref().unwrap().id.clone();
    dispatcher
        .update_task_status(UpdateTaskStatusRequest {
            session_id,
            updates: vec![TaskStatusUpdate {
                task_id: first_task.clone(),
                status: Some(TaskStatus {
                    state: TaskState::Preparing as i32,
                    ..Default::default()
                }),
            }],
        })
        .await
        .unwrap();

    // kill -9 and restart: same objects, same versions, no new tasks.
    let before: Vec<(String, u64, i32)> = tasks(&mut control)
        .await
        .iter()
        .map(|t| {
            (
                t.meta.as_ref().unwrap().id.clone(),
                t.meta.as_ref().unwrap().version,
                t.status.as_ref().unwrap().state,
            )
        })
        .collect();
    drop(session);
    manager.kill();
    let manager = ManagerProcess::start(dir.path(), port);
    let mut control = manager.control().await;
    let service_after = wait_for("the service after restart", async || {
        control
            .get_service(GetServiceRequest {
                id_or_name: "web".into(),
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().service)
    })
    .await;
    assert_eq!(service_after.meta, service.meta);
    let mut after: Vec<(String, u64, i32)> = tasks(&mut control)
        .await
        .iter()
        .map(|t| {
            (
                t.meta.as_ref().unwrap().id.clone(),
                t.meta.as_ref().unwrap().version,
                t.status.as_ref().unwrap().state,
            )
        })
        .collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(after, before);
    assert!(after
        .iter()
        .all(|(_, _, s)| *s == TaskState::Running as i32));

    // Nothing of the spec is readable on disk.
    let leaks = files_containing(&dir.path().join("state"), marker.as_bytes());
    assert!(leaks.is_empty(), "plaintext marker found in {leaks:?}");
}

#[tokio::test]
async fn the_control_api_over_tcp_refuses_callers_without_a_manager_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let manager = ManagerProcess::start(dir.path(), port);
    manager.initialised().await;
    // A certificate from another cluster's CA does not even get through TLS.
    let other = tempfile::tempdir().unwrap();
    let other_port = free_port();
    let other_manager = ManagerProcess::start(other.path(), other_port);
    let mut other_control = other_manager.control().await;
    other_control
        .init_cluster(InitClusterRequest::default())
        .await
        .unwrap();
    let foreign = shoal_identity::NodeIdentity::load(&other.path().join("node")).unwrap();
    let mixed = shoal_identity::NodeIdentity::new(
        foreign.key_pem.clone(),
        foreign.cert_pem.clone(),
        std::fs::read_to_string(dir.path().join("node/ca.crt")).unwrap(),
    )
    .unwrap();
    let refused = match shoal_identity::connect(&format!("127.0.0.1:{port}"), &mixed).await {
        Err(_) => true,
        Ok(channel) => ControlClient::new(channel)
            .list_nodes(ListNodesRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a foreign cluster's certificate was accepted");
    // The manager's own certificate works over TCP.
    let own = shoal_identity::NodeIdentity::load(&dir.path().join("node")).unwrap();
    let channel = shoal_identity::connect(&format!("127.0.0.1:{port}"), &own)
        .await
        .unwrap();
    let nodes = ControlClient::new(channel)
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
}

#[tokio::test]
async fn an_autolocked_manager_restarts_locked_until_unlocked_with_its_key() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut manager = ManagerProcess::start(dir.path(), port);
    let mut control = manager.control().await;
    let init = control
        .init_cluster(InitClusterRequest {
            advertise_addr: "127.0.0.1".into(),
            spec: Some(ClusterSpec {
                autolock: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        init.unlock_key.starts_with("SWMKEY-1-"),
        "{}",
        init.unlock_key
    );
    let state = dir.path().join("state");
    let keys = std::fs::read_to_string(state.join("keys.json")).unwrap();
    assert!(
        keys.contains("\"kek\":null"),
        "a key-encryption key was stored despite autolock: {keys}"
    );
    let marker = "marker-autolock-5d1c";
    control
        .create_service(CreateServiceRequest {
            spec: Some(web_spec("locked", 1, 0, marker)),
        })
        .await
        .unwrap();

    manager.kill();
    let mut manager = ManagerProcess::start(dir.path(), port);
    let mut control = manager.control().await;
    let locked = control.list_nodes(ListNodesRequest {}).await.unwrap_err();
    assert_eq!(locked.code(), tonic::Code::Unavailable);
    assert!(
        locked.message().contains("locked") && locked.message().contains("swarm unlock"),
        "{}",
        locked.message()
    );
    let wrong = control
        .unlock_cluster(UnlockClusterRequest {
            unlock_key: format!("SWMKEY-1-{}", "ab".repeat(32)),
        })
        .await
        .unwrap_err();
    assert!(wrong.message().contains("wrong"), "{}", wrong.message());
    control
        .unlock_cluster(UnlockClusterRequest {
            unlock_key: init.unlock_key.clone(),
        })
        .await
        .unwrap();
    let service = control
        .get_service(GetServiceRequest {
            id_or_name: "locked".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(service.spec.unwrap().name, "locked");

    // Autolock off: the manager keeps its key beside the store again.
    let reply = control
        .update_autolock(UpdateAutolockRequest { autolock: false })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.unlock_key.is_empty());
    wait_for("the stored key", async || {
        let keys = std::fs::read_to_string(state.join("keys.json")).unwrap_or_default();
        (!keys.contains("\"kek\":null")).then_some(())
    })
    .await;
    manager.kill();
    let manager = ManagerProcess::start(dir.path(), port);
    let mut control = manager.control().await;
    wait_for("an unlocked restart", async || {
        control.list_nodes(ListNodesRequest {}).await.ok()
    })
    .await;
    let leaks = files_containing(&state, marker.as_bytes());
    assert!(leaks.is_empty(), "plaintext marker found in {leaks:?}");
}

#[tokio::test]
async fn node_certificates_renew_with_the_cluster_expiry_and_keep_their_identity() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let manager = ManagerProcess::start(dir.path(), port);
    let mut control = manager.initialised().await;
    let too_short = control
        .update_cert_expiry(UpdateCertExpiryRequest { expiry_ms: 60_000 })
        .await
        .unwrap_err();
    assert!(
        too_short
            .message()
            .contains("certificate expiry 1m (--cert-expiry) is less than shoal allows (min 1h)"),
        "{}",
        too_short.message()
    );
    let too_long = control
        .update_cert_expiry(UpdateCertExpiryRequest {
            expiry_ms: 100_000 * 3_600_000,
        })
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), tonic::Code::InvalidArgument);
    assert!(
        too_long.message().contains("(max 87600h)"),
        "{}",
        too_long.message()
    );
    control
        .update_cert_expiry(UpdateCertExpiryRequest {
            expiry_ms: 2 * 3_600_000,
        })
        .await
        .unwrap();
    let identity = shoal_identity::NodeIdentity::load(&dir.path().join("node")).unwrap();
    let (_, old_end) = shoal_identity::validity(&identity.cert_pem).unwrap();
    let renewed = common::renew(&format!("127.0.0.1:{port}"), &identity).await;
    assert_eq!(
        renewed.peer, identity.peer,
        "renewal keeps the node's id, role and cluster"
    );
    let (start, end) = shoal_identity::validity(&renewed.cert_pem).unwrap();
    let lifetime = end.duration_since(start).unwrap();
    assert!(
        lifetime >= Duration::from_secs(2 * 3600)
            && lifetime <= Duration::from_secs(2 * 3600 + 600),
        "lifetime {lifetime:?} is not the 2 h asked for"
    );
    assert!(
        end < old_end,
        "the new expiry applies (90 days before, 2 h now)"
    );
    // The renewed certificate is a working identity.
    let channel = shoal_identity::connect(&format!("127.0.0.1:{port}"), &renewed)
        .await
        .unwrap();
    ControlClient::new(channel)
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap();
}

#[tokio::test]
async fn out_of_range_durations_and_counts_are_refused_and_nothing_is_created() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let manager = ManagerProcess::start(dir.path(), free_port());
    let mut control = manager.initialised().await;

    let with_restart_window = |window_ms| {
        let mut spec = web_spec("web", 1, 8080, "m");
        spec.task.as_mut().unwrap().restart = Some(RestartPolicy {
            max_attempts: 3,
            window_ms,
            ..Default::default()
        });
        spec
    };
    let with_update = |parallelism, delay_ms| {
        let mut spec = web_spec("web", 1, 8080, "m");
        spec.update = Some(UpdateConfig {
            parallelism,
            delay_ms,
            ..Default::default()
        });
        spec
    };
    let cases = [
        (
            // 200000h: `now - window` would have wrapped in the orchestrator.
            with_restart_window(200_000 * 3_600_000),
            &[
                "service web: restart window 200000h",
                "--restart-window",
                "(max 168h)",
            ][..],
        ),
        (
            with_restart_window(u64::MAX),
            &["restart window", "--restart-window", "(max 168h)"][..],
        ),
        (
            with_update(1, u64::MAX),
            &["service web: update delay", "--update-delay", "(max 168h)"][..],
        ),
        (
            with_update(1_000_000, 0),
            &[
                "service web: update parallelism 1000000",
                "--update-parallelism",
                "(max 10000",
            ][..],
        ),
    ];
    for (spec, wanted) in cases {
        let refused = control
            .create_service(CreateServiceRequest { spec: Some(spec) })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        for w in wanted {
            assert!(
                refused.message().contains(w),
                "{:?} does not say {w:?}",
                refused.message()
            );
        }
    }
    let services = control
        .list_services(ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .services;
    assert!(services.is_empty(), "{services:?}");

    // The limits themselves are accepted.
    let mut spec = with_restart_window(168 * 3_600_000);
    spec.update = Some(UpdateConfig {
        parallelism: 10_000,
        delay_ms: 168 * 3_600_000,
        ..Default::default()
    });
    control
        .create_service(CreateServiceRequest { spec: Some(spec) })
        .await
        .unwrap();
    let services = control
        .list_services(ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .services;
    assert_eq!(services.len(), 1);
}

/// A manager with nothing to do stays idle: no component spins (a watch
/// that resolves at once, a loop without a wait). A busy loop takes a
/// whole core; an idle manager's heartbeats and timers take a few ms.
#[tokio::test]
async fn an_idle_leader_uses_almost_no_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let manager = ManagerProcess::start(dir.path(), free_port());
    manager.initialised().await;
    // Past start-up and the first passes of every component.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = manager.cpu_time();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = manager.cpu_time() - before;
    assert!(
        used < Duration::from_millis(600),
        "an idle manager used {used:?} of CPU in 3 s:\n{}",
        manager.log()
    );
}
