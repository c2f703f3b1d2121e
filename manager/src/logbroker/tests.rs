//! The broker's routing: a subscription goes on the node's newest open
//! session; a node's messages reach only a subscription sent to it; a
//! reader that goes removes its route.

use shoal_proto::dispatcher::v1::{PublishLogsMessage, SessionMessage};
use shoal_proto::types::v1::LogOptions;
use tokio::sync::mpsc;
use tonic::Status;

use super::LogBroker;

type SessionItem = Result<SessionMessage, Status>;

fn session() -> (mpsc::Sender<SessionItem>, mpsc::Receiver<SessionItem>) {
    mpsc::channel(4)
}

#[tokio::test]
async fn a_subscription_goes_on_the_nodes_newest_session_and_routes_its_answer() {
    let broker = LogBroker::new();
    let (old_tx, mut old_rx) = session();
    let (new_tx, mut new_rx) = session();
    broker.attach_session("n1", "s-old", &old_tx);
    broker.attach_session("n1", "s-new", &new_tx);
    let tail = LogOptions {
        tail: 5,
        ..Default::default()
    };
    let mut subscription = broker
        .subscribe("n1", vec!["t1".into()], tail)
        .await
        .expect("n1 has a session");
    assert!(
        old_rx.try_recv().is_err(),
        "the replaced session got nothing"
    );
    let message = new_rx.try_recv().expect("sent").expect("ok");
    assert_eq!(message.session_id, "s-new");
    let sent = &message.log_subscriptions[0];
    assert_eq!(sent.task_ids, vec!["t1".to_string()]);
    assert_eq!(sent.options, Some(tail));
    assert!(
        message.assignments.is_none(),
        "a log message carries nothing else"
    );

    // Only the node it was sent to may answer it.
    let refused = broker.route("n2", &sent.id).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let route = broker.route("n1", &sent.id).expect("n1's route");
    route
        .send(PublishLogsMessage {
            subscription_id: sent.id.clone(),
            done: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(subscription.recv().await.expect("routed").done);

    // The reader goes: its route goes with it, and the node's call ends.
    let id = sent.id.clone();
    drop(subscription);
    assert!(route.is_closed());
    assert_eq!(
        broker.route("n1", &id).unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn a_node_without_an_open_session_here_cannot_be_subscribed() {
    let broker = LogBroker::new();
    assert!(broker
        .subscribe("n1", vec![], LogOptions::default())
        .await
        .is_none());
    let (tx, rx) = session();
    broker.attach_session("n1", "s", &tx);
    assert!(broker.holds_session("n1"));
    // The session's stream ended (the agent went).
    drop(rx);
    assert!(!broker.holds_session("n1"));
    assert!(broker
        .subscribe("n1", vec![], LogOptions::default())
        .await
        .is_none());
    // The broker never keeps a session's stream open on its own.
    let (tx, mut rx) = session();
    broker.attach_session("n2", "s", &tx);
    drop(tx);
    assert!(
        rx.recv().await.is_none(),
        "the stream ended with its own sender"
    );
}
