//! Resources on a real lab (issue 11): a task's limits are in its
//! container's cgroup (memory with swap bounded to it, CPU quota, pids); a
//! task that allocates past its memory limit is killed by the OOM killer and
//! `service ps` says so, while the same command without a limit really
//! grows past it; a reservation no node can meet keeps the task pending
//! with the reason.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use shoal_e2e::lab::{task_error, Lab, LabConfig};
use shoal_e2e::test_lab;

const MIB: u64 = 1024 * 1024;

/// The service's one running task's id, once it runs.
fn running_task(lab: &Lab, service: &str) -> String {
    lab.wait_until(
        &format!("{service} running"),
        Duration::from_secs(60),
        || {
            let rows = lab.service_ps(service);
            rows.iter()
                .find(|r| r["State"] == "running")
                .map(|r| r["ID"].as_str().unwrap_or_default().to_string())
                .ok_or(format!("no running task: {rows:?}"))
        },
    )
    .expect("running")
}

/// runc's cgroupfs layout for the agent's `/<namespace>/<task id>`: the
/// unified hierarchy on cgroup v2, one per controller on v1.
struct Cgroup {
    task: String,
    v2: bool,
}

impl Cgroup {
    fn of(task: &str) -> Cgroup {
        Cgroup {
            task: task.to_string(),
            v2: PathBuf::from("/sys/fs/cgroup/cgroup.controllers").exists(),
        }
    }

    fn file(&self, controller: &str, name: &str) -> PathBuf {
        let mut path = PathBuf::from("/sys/fs/cgroup");
        if !self.v2 {
            path.push(controller);
        }
        path.join("shoal").join(&self.task).join(name)
    }

    fn read(&self, controller: &str, name: &str) -> String {
        let path = self.file(controller, name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    fn number(&self, controller: &str, name: &str) -> u64 {
        let text = self.read(controller, name);
        text.parse()
            .unwrap_or_else(|e| panic!("{name} {text:?}: {e}"))
    }

    /// Memory in use by the container's processes.
    fn memory_used(&self) -> u64 {
        if self.v2 {
            self.number("memory", "memory.current")
        } else {
            self.number("memory", "memory.usage_in_bytes")
        }
    }
}

#[test]
fn limits_are_enforced_an_oom_kill_says_why_and_an_oversized_reservation_waits() {
    let lab = test_lab(LabConfig {
        workers: 1,
        ..LabConfig::new("res1")
    });
    let image = format!("{}/web:v1", lab.registry());

    // The limits reach the running container's cgroup.
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "limited",
        "--limit-memory",
        "32M",
        "--limit-cpu",
        "0.5",
        "--limit-pids",
        "64",
        "--reserve-memory",
        "8M",
        &image,
    ]);
    let cgroup = Cgroup::of(&running_task(&lab, "limited"));
    assert!(
        !cgroup.read("memory", "cgroup.procs").is_empty(),
        "the task's processes are in {}",
        cgroup.file("memory", "").display()
    );
    if cgroup.v2 {
        assert_eq!(cgroup.number("memory", "memory.max"), 32 * MIB);
        assert_eq!(cgroup.read("cpu", "cpu.max"), "50000 100000");
        assert_eq!(cgroup.read("pids", "pids.max"), "64");
    } else {
        assert_eq!(cgroup.number("memory", "memory.limit_in_bytes"), 32 * MIB);
        if cgroup
            .file("memory", "memory.memsw.limit_in_bytes")
            .exists()
        {
            assert_eq!(
                cgroup.number("memory", "memory.memsw.limit_in_bytes"),
                32 * MIB,
                "no swap beyond the limit"
            );
        }
        assert_eq!(cgroup.read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cgroup.read("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(cgroup.read("pids", "pids.max"), "64");
    }
    let inspected: Value =
        serde_json::from_str(&lab.shoal_must(&["service", "inspect", "limited"])).expect("json");
    let resources = &inspected[0]["Spec"]["TaskTemplate"]["Resources"];
    assert_eq!(resources["Limits"]["Pids"], 64, "{resources}");
    assert_eq!(resources["Limits"]["MemoryBytes"], 32 * MIB, "{resources}");

    // 64 MiB held by the shell: without a limit the task really holds it;
    // with a 16 MiB limit the OOM killer ends it and ps says why.
    let hog = "x=$(yes | head -c 67108864); echo held; sleep 1000";
    let create_hog = |name: &str, limit: Option<&str>| {
        let mut args = vec!["service", "create", "--detach", "--name", name];
        args.extend(["--restart-condition", "none"]);
        if let Some(limit) = limit {
            args.extend(["--limit-memory", limit]);
        }
        args.extend([image.as_str(), "sh", "-c", hog]);
        lab.shoal_must(&args);
    };
    create_hog("unlimited", None);
    create_hog("hog", Some("16M"));
    let unlimited = Cgroup::of(&running_task(&lab, "unlimited"));
    let used = lab
        .wait_until(
            "the unlimited task holding more than 32 MiB",
            Duration::from_secs(60),
            || {
                // Twice the hog's limit is growth enough, and does not
                // depend on how the shell's buffers round near 64 MiB.
                let used = unlimited.memory_used();
                if used > 32 * MIB {
                    Ok(used)
                } else {
                    Err(format!("{used} bytes in use"))
                }
            },
        )
        .expect("grows");
    assert!(used > 16 * MIB, "the command needs more than the limit");
    let failed = lab
        .wait_until("the hog killed", Duration::from_secs(60), || {
            let rows = lab.service_ps("hog");
            rows.iter()
                .find(|r| r["State"] == "failed")
                .cloned()
                .ok_or(format!("not failed yet: {rows:?}"))
        })
        .expect("killed");
    assert_eq!(
        task_error(&failed),
        "task: non-zero exit (137): OOMKilled (memory limit 16MiB)",
        "{failed}"
    );
    assert_eq!(
        lab.service_ps("unlimited")
            .iter()
            .filter(|r| r["State"] == "running")
            .count(),
        1,
        "the unlimited one still runs"
    );

    // A reservation larger than every node: pending, with the reason.
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "huge",
        "--reserve-memory",
        "10T",
        &image,
    ]);
    let reason = lab
        .wait_until(
            "the huge task pending with a reason",
            Duration::from_secs(60),
            || {
                let rows = lab.service_ps("huge");
                let row = rows.first().ok_or("no task yet")?;
                let error = task_error(row).to_string();
                if row["State"] == "pending" && !error.is_empty() {
                    Ok(error)
                } else {
                    Err(format!("not pending with a reason: {row}"))
                }
            },
        )
        .expect("pending");
    assert_eq!(reason, "no suitable node (2 nodes had insufficient memory)");
    lab.down().expect("lab down leaves nothing");
}
