//! The CLI as a remote user runs it: its own config dir, and nothing of
//! the lab's environment choosing a manager, so only contexts and flags do.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::Lab;

/// `shoal` with a config dir of its own (see [`Lab::remote`]).
pub struct RemoteCli<'a> {
    lab: &'a Lab,
    config: PathBuf,
}

impl<'a> RemoteCli<'a> {
    pub(super) fn new(lab: &'a Lab, config: PathBuf) -> Self {
        Self { lab, config }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(self.lab.cli_path())
            .env("SHOAL_CONFIG", &self.config)
            .env_remove("SHOAL_HOST")
            .env_remove("SHOAL_TLS_DIR")
            .env_remove("SHOAL_CONTEXT")
            .args(args)
            .output()
            .expect("run shoal")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "shoal {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command the manager must refuse (exit 1); returns its stderr.
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "shoal {} was not refused: {stderr}",
            args.join(" ")
        );
        stderr
    }
}
