//! The shoal daemons of a lab node and how the lab tells they are ready.

use std::path::{Path, PathBuf};

use super::Error;

pub const MANAGER_PORT: u16 = 4242;
pub const REGISTRY_PORT: u16 = 5000;
/// Where a lab's password-protected registry listens, on the registry host
/// (`Lab::start_guarded_registry`).
pub const GUARDED_REGISTRY_PORT: u16 = 5001;
/// The containerd namespace the agent keeps shoal's containers in.
pub const CONTAINERD_NAMESPACE: &str = "shoal";

pub const MANAGER: &str = "shoal-manager";
pub const NETD: &str = "shoal-netd";
pub const AGENT: &str = "shoal-agent";
/// Started by containerd's shim beside a task with a terminal.
pub const LOGGER: &str = "shoal-logger";
pub const CLI: &str = "shoal";

/// Where the shoal binaries are: `SHOAL_BIN_DIR`, else `configured`, else the
/// cargo target dir the running executable was built into (tests live in
/// `<target>/debug/deps/`, `shoal-lab` in `<target>/debug/`).
pub fn bin_dir(configured: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("SHOAL_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = configured {
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("locate the running executable", e))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| Error::Config(format!("{} has no parent directory", exe.display())))?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    Ok(dir.to_path_buf())
}

/// Fails unless every shoal binary is in `dir`.
pub fn check_bins(dir: &Path) -> Result<(), Error> {
    for bin in [MANAGER, NETD, AGENT, LOGGER, CLI] {
        if !dir.join(bin).is_file() {
            return Err(Error::Config(format!(
                "{bin} not found in {}: build with `cargo build --workspace --bins` or set SHOAL_BIN_DIR",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Paths of one node host's state, all under `<root>/<host>/`.
pub struct NodeDirs {
    pub host: PathBuf,
}

impl NodeDirs {
    pub fn new(root: &Path, host: &str) -> Self {
        NodeDirs {
            host: root.join(host),
        }
    }
    fn sub(&self, name: &str) -> String {
        self.host.join(name).to_string_lossy().into_owned()
    }
    pub fn run(&self) -> PathBuf {
        self.host.join("run")
    }
    pub fn logs(&self) -> PathBuf {
        self.host.join("logs")
    }
    pub fn containerd(&self) -> PathBuf {
        self.host.join("containerd")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.run().join("control.sock")
    }
    pub fn netd_socket(&self) -> PathBuf {
        self.run().join("netd.sock")
    }
}

pub fn manager_args(dirs: &NodeDirs) -> Vec<String> {
    vec![
        "--state-dir".into(),
        dirs.sub("manager"),
        "--node-dir".into(),
        dirs.sub("node"),
        "--control-socket".into(),
        dirs.control_socket().to_string_lossy().into_owned(),
        "--listen".into(),
        format!("0.0.0.0:{MANAGER_PORT}"),
    ]
}

/// `manager` is the `host:port` of the manager this node reports to.
pub fn netd_args(dirs: &NodeDirs, manager: &str) -> Vec<String> {
    vec![
        "--state-dir".into(),
        dirs.sub("netd"),
        "--node-dir".into(),
        dirs.sub("node"),
        "--socket".into(),
        dirs.netd_socket().to_string_lossy().into_owned(),
        "--manager".into(),
        manager.into(),
        // Tests send nothing beyond the lab: names that are not the
        // cluster's get NXDOMAIN instead of going to the machine's resolvers.
        "--dns-upstream".into(),
        "none".into(),
    ]
}

pub fn agent_args(
    dirs: &NodeDirs,
    containerd_socket: &Path,
    manager: &str,
    registry: &str,
    hostname: &str,
) -> Vec<String> {
    vec![
        // Lab hosts share the machine's UTS namespace: name them explicitly.
        "--hostname".into(),
        hostname.into(),
        "--state-dir".into(),
        dirs.sub("agent"),
        "--node-dir".into(),
        dirs.sub("node"),
        "--containerd-socket".into(),
        containerd_socket.to_string_lossy().into_owned(),
        "--containerd-namespace".into(),
        CONTAINERD_NAMESPACE.into(),
        "--netd-socket".into(),
        dirs.netd_socket().to_string_lossy().into_owned(),
        "--manager-socket".into(),
        dirs.control_socket().to_string_lossy().into_owned(),
        "--manager".into(),
        manager.into(),
        "--insecure-registry".into(),
        registry.into(),
        "--insecure-registry".into(),
        guarded_registry(registry),
    ]
}

/// `shoal swarm join` of a node host into the cluster of the manager at `manager`.
pub fn join_args(dirs: &NodeDirs, token: &str, manager: &str, hostname: &str) -> Vec<String> {
    vec![
        "swarm".into(),
        "join".into(),
        "--token".into(),
        token.into(),
        "--node-dir".into(),
        dirs.sub("node"),
        "--hostname".into(),
        hostname.into(),
        manager.into(),
    ]
}

/// Number of nodes that `shoal node ls --format json` reports Ready. Accepts
/// a JSON array or one object per line (docker's `--format json` style), and
/// finds the state under a `status`/`state` key at any depth, so it does not
/// hang on the exact shape of the CLI's objects.
pub fn ready_nodes(json: &str) -> Result<usize, String> {
    let trimmed = json.trim();
    let nodes: Vec<serde_json::Value> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| format!("node list is not JSON ({e}): {json}"))?
    } else {
        json_lines(trimmed)?
    };
    Ok(nodes.iter().filter(|n| is_ready(n)).count())
}

/// The rows of a list command's `--format json`: one JSON object per line,
/// as docker prints them.
pub fn json_lines(text: &str) -> Result<Vec<serde_json::Value>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not JSON lines ({e}): {text}"))
}

fn is_ready(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| {
            let key = k.to_ascii_lowercase();
            let state_key = key == "status" || key == "state";
            (state_key && v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("ready")))
                || (v.is_object() && is_ready(v))
        }),
        _ => false,
    }
}

/// The password-protected registry beside the lab's registry `registry`
/// (`host:port`).
pub fn guarded_registry(registry: &str) -> String {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    format!("{host}:{GUARDED_REGISTRY_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_nodes_are_counted_in_either_json_shape() {
        let lines = "{\"ID\":\"a\",\"Status\":\"Ready\"}\n{\"ID\":\"b\",\"Status\":\"Down\"}\n";
        assert_eq!(ready_nodes(lines), Ok(1));
        let array =
            r#"[{"id":"a","status":{"state":"READY"}},{"id":"b","status":{"state":"ready"}}]"#;
        assert_eq!(ready_nodes(array), Ok(2));
        assert_eq!(ready_nodes(""), Ok(0));
        assert!(ready_nodes("ID HOSTNAME").is_err());
    }

    #[test]
    fn daemon_flags_put_all_state_under_the_host_dir() {
        let dirs = NodeDirs::new(Path::new("/lab"), "m1");
        let args = agent_args(
            &dirs,
            Path::new("/lab/m1/containerd/containerd.sock"),
            "127.0.0.1:4242",
            "10.201.1.2:5000",
            "m1",
        );
        assert_eq!(args[1], "m1");
        assert_eq!(args[3], "/lab/m1/agent");
        assert!(args.contains(&"/lab/m1/run/netd.sock".to_string()));
        assert_eq!(manager_args(&dirs)[5], "/lab/m1/run/control.sock");
    }
}
