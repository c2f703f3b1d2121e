//! containerd's content store: streaming blobs in and reading them back.

use super::lease::Lease;
use super::{Executor, ExecutorError, Result};
use containerd_client::services::v1::{
    AbortRequest, InfoRequest, ReadContentRequest, WriteAction, WriteContentRequest,
};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// containerd's gRPC limit is 16 MiB a message; stay well below.
const CHUNK: usize = 1 << 20;

impl Executor {
    /// Whether the content store holds `digest`.
    pub(crate) async fn content_exists(&self, digest: &str) -> Result<bool> {
        match self
            .content()
            .info(self.request(
                InfoRequest {
                    digest: digest.to_string(),
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(ExecutorError::containerd("content info", digest)(status)),
        }
    }

    /// Read a whole blob (manifests and configs: small).
    pub(crate) async fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut stream = self
            .content()
            .read(self.request(
                ReadContentRequest {
                    digest: digest.to_string(),
                    offset: 0,
                    size: 0,
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("read content", digest))?
            .into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(ExecutorError::containerd("read content", digest))?
        {
            data.extend_from_slice(&chunk.data);
        }
        Ok(data)
    }

    /// Stream `data` into the content store as `expected` and commit it with `labels`.
    /// containerd checks size and digest on commit. Content that is already there is success.
    ///
    /// `data` yields chunks or a download error (already formatted for the caller).
    pub(crate) async fn write_blob<S, B>(
        &self,
        lease: &Lease,
        expected: &str,
        total: i64,
        labels: HashMap<String, String>,
        data: S,
    ) -> Result<(), WriteError>
    where
        S: Stream<Item = Result<B, String>> + Unpin,
        B: AsRef<[u8]>,
    {
        // A fresh ref per write: two pulls of the same blob must not wait on each other's lock;
        // the loser's commit reports AlreadyExists, which is fine.
        let reference = format!(
            "shoal-{}-{}",
            expected,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let abort_ref = reference.clone();
        let (tx, rx) = mpsc::channel::<WriteContentRequest>(4);
        let mut client = self.content();
        let request = self.request(ReceiverStream::new(rx), Some(lease));

        // containerd answers every message, so the responses must be drained while sending.
        let receive = async move {
            let mut responses = client.write(request).await?.into_inner();
            while responses.message().await?.is_some() {}
            Ok::<(), tonic::Status>(())
        };
        let send = async move {
            let mut data = data;
            let mut offset: i64 = 0;
            while let Some(chunk) = data.next().await {
                let chunk = chunk.map_err(WriteError::Source)?;
                for piece in chunk.as_ref().chunks(CHUNK) {
                    let message = WriteContentRequest {
                        action: WriteAction::Write as i32,
                        r#ref: reference.clone(),
                        total,
                        expected: expected.to_string(),
                        offset,
                        data: piece.to_vec(),
                        labels: HashMap::new(),
                    };
                    offset += piece.len() as i64;
                    if tx.send(message).await.is_err() {
                        return Err(WriteError::Closed);
                    }
                }
            }
            let commit = WriteContentRequest {
                action: WriteAction::Commit as i32,
                r#ref: reference.clone(),
                total,
                expected: expected.to_string(),
                offset,
                data: Vec::new(),
                labels,
            };
            if tx.send(commit).await.is_err() {
                return Err(WriteError::Closed);
            }
            Ok(())
        };
        let (sent, received) = tokio::join!(send, receive);
        match (sent, received) {
            (_, Err(status)) if status.code() == tonic::Code::AlreadyExists => Ok(()),
            (_, Err(status)) => Err(WriteError::Containerd(status.message().to_string())),
            (Err(e), Ok(())) => {
                let _ = self
                    .content()
                    .abort(self.request(AbortRequest { r#ref: abort_ref }, Some(lease)))
                    .await;
                Err(e)
            }
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

/// Why a blob did not make it into the content store.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The data source (the registry download) failed.
    Source(String),
    /// containerd refused the write or the commit.
    Containerd(String),
    /// containerd closed the stream without saying why.
    Closed,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Source(message) => f.write_str(message),
            WriteError::Containerd(message) => write!(f, "containerd content store: {message}"),
            WriteError::Closed => f.write_str("containerd closed the content write stream"),
        }
    }
}
