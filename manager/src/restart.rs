//! Restarting the manager process in place: same pid, same arguments, a
//! fresh process image. A manager that leaves Raft (demotion, `swarm
//! leave`) or rebuilds it (`--force-new-cluster`) starts over this way rather
//! than unwinding every server, stream and component it runs: the kernel
//! closes every socket, and the next image starts from the state directory
//! like any start.
//!
//! The data key, when the next image needs it, travels through a pipe on
//! its stdin, never through a file or the environment, so an autolocked
//! manager does not come back locked.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;

use crate::seal::DataKey;

/// Tells the next process image to read its data key from stdin.
const HANDOFF_ENV: &str = "SHOAL_MANAGER_KEY_ON_STDIN";

/// Replaces this process with a fresh image of itself. Returns only if the
/// exec failed.
pub fn restart_in_place(dek: Option<&DataKey>) -> std::io::Error {
    tracing::info!("restarting the manager in place");
    let mut command = std::process::Command::new("/proc/self/exe");
    command.args(std::env::args_os().skip(1));
    command.env_remove(HANDOFF_ENV);
    if let Some(dek) = dek {
        let (reader, mut writer) = match std::io::pipe() {
            Ok(pipe) => pipe,
            Err(e) => return e,
        };
        // 64 hex characters: far below a pipe's buffer, so this never blocks.
        if let Err(e) = writer.write_all(dek.to_hex().as_bytes()) {
            return e;
        }
        drop(writer);
        command.stdin(reader).env(HANDOFF_ENV, "1");
    }
    command.exec()
}

/// The data key the previous process image handed over, if it did.
pub fn take_handed_over_key() -> Option<DataKey> {
    std::env::var_os(HANDOFF_ENV)?;
    std::env::remove_var(HANDOFF_ENV);
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        tracing::warn!("read the handed-over data key: {e}");
        return None;
    }
    DataKey::from_hex(&text)
}
