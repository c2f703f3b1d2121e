//! Commands in a lab VM over SSH, as root with the box's key, through the
//! port QEMU forwards from 127.0.0.1. The VMs' host keys are made at their
//! first boot, so they are not checked (nothing but this lab's VMs listens
//! on those ports).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::lab::command::display;
use crate::lab::Error;

#[derive(Debug, Clone)]
pub struct Ssh {
    pub port: u16,
    pub key: PathBuf,
}

impl Ssh {
    pub fn new(port: u16, key: &Path) -> Ssh {
        Ssh {
            port,
            key: key.to_path_buf(),
        }
    }

    /// `ssh … root@127.0.0.1 SCRIPT` (the remote shell runs SCRIPT).
    pub fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                // An emulated VM busy pulling and starting containers can
                // take many seconds to answer the SSH banner.
                "ConnectTimeout=30",
                "-o",
                "ServerAliveInterval=10",
                "root@127.0.0.1",
                script,
            ]);
        cmd
    }

    /// Runs `script` and returns its output, whatever its exit status. A
    /// connection that failed before the session began (so `script` never
    /// ran) is tried again, a few times.
    pub fn output(&self, script: &str) -> Result<Output, Error> {
        let mut attempt = 1;
        loop {
            let mut cmd = self.command(script);
            let out = cmd
                .stdin(Stdio::null())
                .output()
                .map_err(|e| Error::io(format!("running `{}`", display(&cmd)), e))?;
            if attempt == CONNECT_ATTEMPTS || !never_connected(&out) {
                return Ok(out);
            }
            attempt += 1;
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }

    /// Runs `script`, failing unless it exits 0; returns its stdout.
    pub fn run(&self, script: &str) -> Result<String, Error> {
        let out = self.output(script)?;
        checked(script, out)
    }

    /// Writes `content` to `path` in the VM (mode 0755).
    pub fn upload(&self, content: &[u8], path: &str) -> Result<(), Error> {
        let script = format!("cat > {path}.tmp && chmod 0755 {path}.tmp && mv {path}.tmp {path}");
        let mut child = self
            .command(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("spawn ssh", e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(content)
                .map_err(|e| Error::io(format!("send {path} over ssh"), e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("wait for ssh", e))?;
        checked(&script, out).map(drop)
    }
}

/// How often a command is tried when SSH could not connect.
const CONNECT_ATTEMPTS: u32 = 3;

/// ssh exits 255 on its own errors; these words are those of a connection
/// that never reached the remote shell.
fn never_connected(out: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    out.status.code() == Some(255)
        && [
            "during banner exchange",
            "kex_exchange_identification",
            "Connection refused",
            "Connection timed out",
        ]
        .iter()
        .any(|words| stderr.contains(words))
}

fn checked(script: &str, out: Output) -> Result<String, Error> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            cmd: format!("ssh: {script}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
