//! The unix-socket gRPC API, end to end against the real kernel (root only).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::*;
use shoal_netd::Dataplane;
use shoal_proto::netd::v1::{AttachTaskRequest, DetachTaskRequest, ListAttachmentsRequest};

#[test]
fn grpc_attach_list_detach_over_unix_socket() {
    let host = Host::new("grpc");
    let state = host.state_dir().to_path_buf();
    let socket = host.state_dir().join("run/netd.sock");
    host.block_on(|| async move {
        let dp = Arc::new(Dataplane::open(&state).await.expect("open"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn({
            let socket = socket.clone();
            async move {
                shoal_netd::server::serve(dp, Default::default(), &socket, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        let mut client = None;
        for _ in 0..50 {
            if let Ok(c) = shoal_netd::client::connect(&socket).await {
                client = Some(c);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut client = client.expect("netd socket never answered");
        let mode = std::fs::metadata(&socket)
            .expect("socket")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "socket mode {mode:o}");

        let req = AttachTaskRequest {
            task_id: "task-grpc-1".into(),
            networks: vec![attachment("10.0.1.5/24")],
            hostname: "web".into(),
            ..Default::default()
        };
        let path = client
            .attach_task(req.clone())
            .await
            .expect("attach")
            .into_inner()
            .netns_path;
        assert_eq!(path, state.join("netns/task-grpc-1").to_string_lossy());
        let again = client
            .attach_task(req)
            .await
            .expect("attach twice")
            .into_inner()
            .netns_path;
        assert_eq!(again, path);
        let eth0 = links_in(std::path::Path::new(&path));
        assert_eq!(
            ipv4_addrs(link(&eth0, "eth0").expect("eth0")),
            vec!["10.0.1.5/24".to_string()]
        );

        let listed = client
            .list_attachments(ListAttachmentsRequest {})
            .await
            .expect("list")
            .into_inner();
        assert_eq!(listed.attachments.len(), 1);
        assert_eq!(listed.attachments[0].task_id, "task-grpc-1");
        assert_eq!(listed.attachments[0].netns_path, path);
        assert_eq!(listed.attachments[0].networks[0].address, "10.0.1.5/24");

        let bad = client
            .attach_task(AttachTaskRequest {
                task_id: "../escape".into(),
                networks: vec![attachment("10.0.1.6/24")],
                hostname: String::new(),
                ..Default::default()
            })
            .await
            .expect_err("bad task id accepted");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);

        client
            .detach_task(DetachTaskRequest {
                task_id: "task-grpc-1".into(),
            })
            .await
            .expect("detach");
        let listed = client
            .list_attachments(ListAttachmentsRequest {})
            .await
            .expect("list")
            .into_inner();
        assert!(listed.attachments.is_empty());
        assert!(!std::path::Path::new(&path).exists(), "namespace file left");

        let _ = stop.send(());
        server.await.expect("server task").expect("server");
    });
    assert!(link(&host.links(), "vttask-grpc").is_none(), "veth left");
}
