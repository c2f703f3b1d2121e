//! `WatchServices`: a message after each commit that touched the services a
//! caller waits on (a service object, or a task of one), so the CLI's
//! `--detach=false` waits read the state when it changed, not on a timer.

use std::collections::HashSet;
use std::sync::Arc;

use shoal_proto::control::v1::WatchServicesMessage;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tonic::Status;

use crate::store::{Change, Object, Store};

/// What a watch waits on: some services by id, or every one.
#[derive(Debug, Clone)]
pub struct Interest {
    ids: HashSet<String>,
}

impl Interest {
    /// `ids` empty: every service.
    pub fn new(ids: Vec<String>) -> Interest {
        Interest {
            ids: ids.into_iter().collect(),
        }
    }

    fn service(&self, id: &str) -> bool {
        self.ids.is_empty() || self.ids.contains(id)
    }

    /// Whether `change` touched a watched service or one of its tasks
    /// (before or after the change: a task moved off is news too).
    pub fn touched_by(&self, change: &Change) -> bool {
        let (old, new) = match change {
            Change::Put { old, new } => (old.as_ref(), new),
            Change::Delete(gone) => (None, gone),
        };
        old.into_iter().chain([new]).any(|object| match object {
            Object::Service(s) => self.service(s.meta.as_ref().map_or("", |m| m.id.as_str())),
            Object::Task(t) => self.service(&t.service_id),
            _ => false,
        })
    }
}

/// Sends the first message, then one per commit that `interest` cares
/// about, until the caller goes or the store does. The channel holds one
/// message: while the caller has not read it, later commits are merged
/// into it (the caller reads the whole state on each message anyway). A
/// watch that fell behind the store's event ring counts as changed.
pub async fn stream(
    store: Arc<Store>,
    interest: Interest,
    out: mpsc::Sender<Result<WatchServicesMessage, Status>>,
) {
    let mut events = store.subscribe();
    if out
        .send(Ok(WatchServicesMessage { index: 0 }))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let index = tokio::select! {
            () = out.closed() => return,
            event = events.recv() => match event {
                Ok(event) if event.changes.iter().any(|c| interest.touched_by(c)) => event.index,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => 0,
                Err(RecvError::Closed) => return,
            },
        };
        match out.try_send(Ok(WatchServicesMessage { index })) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{Meta, Service, Task};
    use std::time::Duration;

    fn service(id: &str) -> Object {
        Object::Service(Box::new(Service {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    fn task(id: &str, service: &str) -> Object {
        Object::Task(Arc::new(Task {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            service_id: service.into(),
            ..Default::default()
        }))
    }

    fn put(new: Object) -> Change {
        Change::Put { old: None, new }
    }

    #[test]
    fn a_watch_cares_for_its_services_and_their_tasks_only() {
        let web = Interest::new(vec!["web".into()]);
        assert!(web.touched_by(&put(service("web"))));
        assert!(web.touched_by(&put(task("t1", "web"))));
        assert!(web.touched_by(&Change::Delete(task("t1", "web"))));
        assert!(!web.touched_by(&put(service("db"))));
        assert!(!web.touched_by(&put(task("t2", "db"))));
        let every = Interest::new(Vec::new());
        assert!(every.touched_by(&put(task("t2", "db"))));
    }

    #[tokio::test]
    async fn commits_to_the_watched_service_wake_the_watcher_and_others_do_not() {
        let store = Store::in_memory();
        let (tx, mut rx) = mpsc::channel(1);
        let watch = tokio::spawn(stream(store.clone(), Interest::new(vec!["web".into()]), tx));
        let first = rx.recv().await.expect("first").expect("ok");
        assert_eq!(first.index, 0, "a message as the watch begins");

        let write = |object: Object| {
            let store = store.clone();
            async move {
                store
                    .update(|_, tx| {
                        tx.put(object);
                        Ok(())
                    })
                    .await
                    .expect("write")
            }
        };
        write(service("db")).await;
        let quiet = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
        assert!(quiet.is_err(), "another service's commit: {quiet:?}");
        write(task("t1", "web")).await;
        let woke = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("woken")
            .expect("open")
            .expect("ok");
        assert!(woke.index > 0);

        // Commits the watcher has not read yet make one message.
        write(service("web")).await;
        write(task("t2", "web")).await;
        tokio::task::yield_now().await;
        assert!(rx.recv().await.is_some());
        let merged = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
        assert!(merged.is_err(), "merged: {merged:?}");

        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("the watch ends when its caller goes")
            .expect("no panic");
    }
}
