//! The node's answer to a log subscription (`service logs`): one
//! `PublishLogs` call to the manager that sent it, carrying the records of
//! the subscription's tasks as the reader of each task's log files yields
//! them, in batches. The call ends when everything asked for was sent, or
//! when the manager ends it (the reader went); the file readers stop then.

use std::path::PathBuf;

use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::{LogSubscription, PublishLogsMessage};
use shoal_proto::types::v1::{LogNotice, LogRecord};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::logs::reader::{self, LogReadError};

/// At most this many records in one message, and about this many bytes:
/// few messages for a long tail, small ones while following.
const BATCH_RECORDS: usize = 512;
const BATCH_BYTES: usize = 256 * 1024;

/// Answers `subscription` in the background.
pub fn spawn(client: DispatcherClient<Channel>, logs_dir: PathBuf, subscription: LogSubscription) {
    tokio::spawn(async move {
        let id = subscription.id.clone();
        if let Err(e) = publish(client, logs_dir, subscription).await {
            tracing::warn!("log subscription {id}: {}", e.message());
        }
    });
}

/// What the task readers hand the batcher.
enum Read {
    Record(LogRecord),
    Notice(LogNotice),
}

async fn publish(
    mut client: DispatcherClient<Channel>,
    logs_dir: PathBuf,
    subscription: LogSubscription,
) -> Result<(), tonic::Status> {
    let options = subscription.options.unwrap_or_default();
    let (out, rx) = mpsc::channel::<PublishLogsMessage>(4);
    // The opening message: the manager learns the node answers.
    let opening = PublishLogsMessage {
        subscription_id: subscription.id.clone(),
        ..Default::default()
    };
    if out.send(opening).await.is_err() {
        return Ok(());
    }
    let (read_tx, read_rx) = mpsc::channel::<Read>(BATCH_RECORDS);
    let mut readers = JoinSet::new();
    for task_id in subscription.task_ids {
        let dir = logs_dir.join(&task_id);
        let read_tx = read_tx.clone();
        readers.spawn(async move {
            let (records_tx, mut records_rx) = mpsc::channel(64);
            let forward = {
                let read_tx = read_tx.clone();
                async move {
                    while let Some(record) = records_rx.recv().await {
                        if read_tx.send(Read::Record(record)).await.is_err() {
                            return;
                        }
                    }
                }
            };
            let (read, ()) =
                tokio::join!(reader::read(&dir, &task_id, &options, records_tx), forward);
            let notice = match read {
                Ok(()) => return,
                Err(LogReadError::NoLogs) => LogNotice {
                    task_id: task_id.clone(),
                    message: format!("no logs of task {task_id} on this node"),
                    no_logs: true,
                },
                Err(e) => LogNotice {
                    task_id: task_id.clone(),
                    message: format!("reading the logs of task {task_id}: {e}"),
                    no_logs: false,
                },
            };
            let _ = read_tx.send(Read::Notice(notice)).await;
        });
    }
    drop(read_tx);
    let batcher = batch(subscription.id, read_rx, out);
    let call = client.publish_logs(ReceiverStream::new(rx));
    tokio::pin!(batcher);
    tokio::select! {
        // The manager ended the call (the reader went, or it failed):
        // dropping the batcher and the readers stops reading.
        answer = call => answer.map(|_| ()),
        () = &mut batcher => {
            // Everything was sent; the call ends once the manager has it.
            Ok(())
        }
    }
}

/// Adds `read` to `message`; the bytes it adds.
fn add(read: Read, message: &mut PublishLogsMessage) -> usize {
    match read {
        Read::Record(r) => {
            let bytes = r.data.len();
            message.records.push(r);
            bytes
        }
        Read::Notice(n) => {
            message.notices.push(n);
            0
        }
    }
}

/// Gathers what the readers yield into messages until they all end, then
/// sends the last one, marked done.
async fn batch(
    subscription_id: String,
    mut reads: mpsc::Receiver<Read>,
    out: mpsc::Sender<PublishLogsMessage>,
) {
    let message = || PublishLogsMessage {
        subscription_id: subscription_id.clone(),
        ..Default::default()
    };
    loop {
        let Some(first) = reads.recv().await else {
            let mut last = message();
            last.done = true;
            let _ = out.send(last).await;
            // Keep the request stream open until the manager answers.
            out.closed().await;
            return;
        };
        let mut next = message();
        let mut bytes = add(first, &mut next);
        // What is already read joins this message.
        while next.records.len() < BATCH_RECORDS && bytes < BATCH_BYTES {
            match reads.try_recv() {
                Ok(read) => bytes += add(read, &mut next),
                Err(_) => break,
            }
        }
        if out.send(next).await.is_err() {
            return;
        }
    }
}
