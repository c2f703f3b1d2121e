//! Secrets on a multi-host lab: only the node that runs a task using the
//! secret receives it; the container reads it at /run/secrets/<target> with
//! the given owner and mode, from a tmpfs; its value is on no disk, neither
//! the managers' (sealed store) nor the workers'. A service's environment
//! is sealed in the managers' store too.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::require_root;

const MARKER: &str = "marker-secret-9f2e71c4";
const ENV_MARKER: &str = "marker-env-41d07b3a";
const MANAGERS: [&str; 3] = ["m1", "m2", "m3"];

/// Files under `dir` containing `marker`, skipping tmpfs mounts (memory).
fn on_disk_with_marker(dir: &Path, marker: &str, tmpfs: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let text = path.to_string_lossy().to_string();
        if tmpfs.iter().any(|m| text.starts_with(m.as_str())) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            hits.extend(on_disk_with_marker(&path, marker, tmpfs));
        } else if meta.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                    hits.push(text);
                }
            }
        }
    }
    hits
}

fn tmpfs_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|fs| fs.starts_with("tmpfs"))
        })
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .collect()
}

#[test]
fn a_secret_reaches_only_its_tasks_node_at_the_right_path_and_mode_and_no_disk() {
    require_root();
    let lab = Lab::up(LabConfig {
        managers: 3,
        workers: 2,
        replace: true,
        ..LabConfig::new("t-secret")
    })
    .unwrap_or_else(|e| panic!("lab up: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("value");
    std::fs::write(&file, MARKER).expect("write");
    lab.shoal_ok(["secret", "create", "db_pass", &file.to_string_lossy()])
        .expect("secret create");
    let inspect = lab
        .shoal_ok(["secret", "inspect", "db_pass"])
        .expect("inspect");
    assert!(
        !inspect.contains(MARKER),
        "inspect shows the value: {inspect}"
    );

    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "app",
        "--secret",
        "source=db_pass,target=pw,uid=1000,gid=1000,mode=0400",
        "--env",
        &format!("APP_TOKEN={ENV_MARKER}"),
        &image,
    ])
    .expect("service create");
    let ps = lab
        .shoal_ok(["service", "ps", "--format", "json", "app"])
        .expect("ps");
    let tasks = shoal_e2e::lab::json_lines(&ps).expect("json");
    let node = tasks[0]["Node"].as_str().expect("node").to_string();

    let pid = lab
        .wait_until("the task runs", Duration::from_secs(20), || {
            lab.running_task_pids(&node)
                .map_err(|e| e.to_string())?
                .first()
                .copied()
                .ok_or_else(|| "no task yet".to_string())
        })
        .expect("running task");
    let in_container = format!("/proc/{pid}/root/run/secrets/pw");
    assert_eq!(
        std::fs::read_to_string(&in_container).expect("read the secret"),
        MARKER
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(
        String::from_utf8_lossy(&environ).contains(&format!("APP_TOKEN={ENV_MARKER}")),
        "the task lacks its environment"
    );
    let meta = std::fs::metadata(&in_container).expect("stat");
    assert_eq!(meta.mode() & 0o777, 0o400);
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let line = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/run/secrets/pw"))
        .unwrap_or_else(|| panic!("no mount at /run/secrets/pw:\n{mountinfo}"));
    assert!(
        line.contains(" - tmpfs "),
        "the secret is not on a tmpfs: {line}"
    );

    // Other nodes never got it; no disk anywhere holds it.
    for other in MANAGERS
        .into_iter()
        .chain(["w1", "w2"])
        .filter(|h| *h != node)
    {
        let secrets_dir = lab.root().join(other).join("agent/secrets");
        let entries = std::fs::read_dir(&secrets_dir)
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(
            entries, 0,
            "{other} has secret files though it runs no task using them"
        );
    }
    let tmpfs = tmpfs_mounts();
    let hits = on_disk_with_marker(lab.root(), MARKER, &tmpfs);
    assert!(hits.is_empty(), "the secret's value is on disk: {hits:?}");
    // The task's own node hands the environment to containerd; the
    // managers' raft logs, snapshots and objects hold it sealed.
    for manager in MANAGERS {
        let dir = lab.root().join(manager).join("manager");
        assert!(dir.is_dir(), "no data directory {}", dir.display());
        let hits = on_disk_with_marker(&dir, ENV_MARKER, &tmpfs);
        assert!(
            hits.is_empty(),
            "the service's env is in plaintext: {hits:?}"
        );
    }

    // In use: refused; after the service goes, removable.
    let out = lab.shoal(["secret", "rm", "db_pass"]).expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by the following service(s): app"),
        "{out:?}"
    );
    lab.shoal_ok(["service", "rm", "app"]).expect("service rm");
    lab.shoal_ok(["secret", "rm", "db_pass"])
        .expect("secret rm");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
