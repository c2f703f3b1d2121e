//! Running a process inside a task's container (containerd's task Exec):
//! what health probes are. The process gets the container's own process
//! spec (environment, working directory, user, capabilities) with other
//! arguments; its stdout and stderr go to a file the runc shim appends to,
//! read once it exits.

use super::{Executor, ExecutorError, Result};
use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, KillRequest, StartRequest, WaitRequest,
};
use nix::sys::signal::Signal;
use rand::Rng;
use std::path::PathBuf;
use std::time::Duration;

const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// How much of a process's output is kept (docker keeps 4 KiB of a probe's).
pub const OUTPUT_LIMIT: usize = 4096;

/// How long to wait for a killed exec process to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What an exec'd process did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when it outlived its timeout and was killed.
    pub exit_code: Option<i32>,
    /// stdout and stderr interleaved, at most [`OUTPUT_LIMIT`] bytes.
    pub output: String,
}

impl Executor {
    fn exec_output_path(&self, id: &str, exec_id: &str) -> PathBuf {
        self.state_dir()
            .join("exec")
            .join(format!("{id}.{exec_id}.out"))
    }

    /// Runs `argv` in the running container `id` and waits for it, killing it
    /// (SIGKILL) once `timeout` has passed. The process is always deleted
    /// from containerd before this returns.
    pub async fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput> {
        let exec_id = format!("exec-{:016x}", rand::thread_rng().gen::<u64>());
        let output_path = self.exec_output_path(id, &exec_id);
        if let Some(dir) = output_path.parent() {
            std::fs::create_dir_all(dir).map_err(ExecutorError::io("create", dir))?;
        }
        let outcome = self.exec_started(id, &exec_id, argv, timeout).await;
        let _ = self
            .tasks()
            .delete_process(self.request(
                DeleteProcessRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                },
                None,
            ))
            .await;
        let output = read_limited(&output_path);
        let _ = std::fs::remove_file(&output_path);
        Ok(ExecOutput {
            exit_code: outcome?,
            output,
        })
    }

    async fn exec_started(
        &self,
        id: &str,
        exec_id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<Option<i32>> {
        let process = self.process_spec(id, argv).await?;
        let uri = format!("file://{}", self.exec_output_path(id, exec_id).display());
        self.tasks()
            .exec(self.request(
                ExecProcessRequest {
                    container_id: id.to_string(),
                    stdin: String::new(),
                    stdout: uri.clone(),
                    stderr: uri,
                    terminal: false,
                    spec: Some(prost_types::Any {
                        type_url: PROCESS_TYPE_URL.to_string(),
                        value: process,
                    }),
                    exec_id: exec_id.to_string(),
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("exec in", id))?;
        self.tasks()
            .start(self.request(
                StartRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("start exec in", id))?;
        if let Ok(waited) = tokio::time::timeout(timeout, self.wait_exec(id, exec_id)).await {
            return waited.map(Some);
        }
        let _ = self
            .tasks()
            .kill(self.request(
                KillRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                    signal: Signal::SIGKILL as u32,
                    all: false,
                },
                None,
            ))
            .await;
        let _ = tokio::time::timeout(KILL_WAIT, self.wait_exec(id, exec_id)).await;
        Ok(None)
    }

    async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<i32> {
        let response = self
            .tasks()
            .wait(self.request(
                WaitRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("wait exec in", id))?;
        Ok(response.into_inner().exit_status as i32)
    }

    /// The container's own process spec with `argv` as its arguments.
    async fn process_spec(&self, id: &str, argv: &[String]) -> Result<Vec<u8>> {
        let container = self
            .get_container(id)
            .await?
            .ok_or_else(|| ExecutorError::NotFound(id.to_string()))?;
        let spec_error = |message: String| ExecutorError::Spec {
            id: id.to_string(),
            message,
        };
        let spec: serde_json::Value = container
            .spec
            .map(|any| serde_json::from_slice(&any.value))
            .transpose()
            .map_err(|e| spec_error(format!("stored spec is not JSON: {e}")))?
            .ok_or_else(|| spec_error("the container has no spec".to_string()))?;
        let mut process = spec
            .get("process")
            .cloned()
            .ok_or_else(|| spec_error("the container's spec has no process".to_string()))?;
        process["args"] = serde_json::json!(argv);
        process["terminal"] = serde_json::json!(false);
        serde_json::to_vec(&process).map_err(|e| spec_error(e.to_string()))
    }
}

/// The file's first [`OUTPUT_LIMIT`] bytes as text; nothing if it is missing.
fn read_limited(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(OUTPUT_LIMIT as u64).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
