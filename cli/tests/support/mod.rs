//! What the tests comparing shoal with the Docker CLI share.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Fails the test unless `docker` runs: docker's own loader is what shoal's is compared against,
/// so without it this test has nothing to compare with and must not pass.
pub fn require_docker() {
    let problem = match Command::new("docker").arg("--version").output() {
        Ok(out) if out.status.success() => return,
        Ok(out) => format!(
            "`docker --version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("cannot run `docker`: {e}"),
    };
    panic!(
        "this test needs the `docker` CLI on PATH, whose `docker stack config` is the reference \
         (no daemon needed): install Docker's CLI, e.g. the docker-ce-cli package; {problem}"
    );
}

/// The variables a comparison runs with: those of `env_file` (when there is
/// one) plus what docker needs to start; both CLIs see exactly this map.
pub fn docker_env(env_file: &Path, home: &Path) -> HashMap<String, String> {
    let mut env = HashMap::new();
    // Docker is found through PATH; shoal's loader sees the same variable, harmlessly.
    if let Ok(path) = std::env::var("PATH") {
        env.insert("PATH".to_string(), path);
    }
    env.insert("HOME".to_string(), home.display().to_string());
    env.insert(
        "DOCKER_CONFIG".to_string(),
        home.join(".docker").display().to_string(),
    );
    if let Ok(text) = std::fs::read_to_string(env_file) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}
