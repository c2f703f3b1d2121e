//! A production-hardened service on a real lab (issue 12): a non-root user,
//! a read-only root with a tmpfs for what it writes, no capabilities, no
//! new privileges, a pids limit, an init, ulimits, a namespaced sysctl and
//! an extra host; it runs exactly as written and `service inspect` shows
//! each setting. Bad input is refused before anything is made, and a bind
//! mount whose source the node lacks rejects the task in docker's words.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shoal_e2e::lab::{task_error, Lab, LabConfig};
use shoal_e2e::test_lab;

/// Runs `script` with sh inside the container of `task` on `host` (with the
/// container's own user, capabilities and limits); (success, output).
fn in_container(lab: &Lab, host: &str, task: &str, script: &str) -> (bool, String) {
    let socket = lab.containerd_socket(host).expect("containerd socket");
    let exec_id = format!("probe-{}", rand_suffix());
    let out = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", "shoal", "task", "exec", "--exec-id", &exec_id, task])
        .args(["sh", "-c", script])
        .output()
        .expect("run ctr");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

/// The service's running task (id, lab host) once it runs.
fn running_task(lab: &Lab, service: &str) -> (String, String) {
    let hosts = shoal_e2e::probe::node_hostnames(lab);
    let id = lab
        .wait_until(
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
        .expect("running");
    let task = shoal_e2e::probe::service_tasks(lab, service)
        .into_iter()
        .find(|t| t.meta.as_ref().is_some_and(|m| m.id == id))
        .expect("the task");
    (id, hosts.get(&task.node_id).cloned().unwrap_or_default())
}

#[test]
fn a_hardened_service_runs_as_written_and_bad_options_are_refused() {
    let lab = test_lab(LabConfig {
        workers: 0,
        ..LabConfig::new("hard1")
    });
    let image = format!("{}/web:v1", lab.registry());
    // An unprivileged httpd on port 80: the namespaced sysctl lets user
    // 1000 bind it without a capability; it serves from the tmpfs.
    let serve = "mkdir -p /tmp/www && echo hardened > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www";
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "hard",
        "--user",
        "1000",
        "--group",
        "4242",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--no-new-privileges",
        "--limit-pids",
        "32",
        "--init",
        "--ulimit",
        "nofile=512:1024",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=0",
        "--add-host",
        "db:10.0.0.9",
        "--mount",
        "type=tmpfs,target=/tmp,tmpfs-size=1m",
        "--publish",
        "8080:80",
        &image,
        "sh",
        "-c",
        serve,
    ]);
    let (task, host) = running_task(&lab, "hard");
    let addr = lab.host_addr(&host).expect("host address");
    let (status, body) = lab
        .wait_until(
            "the hardened httpd answers",
            Duration::from_secs(30),
            || lab.http_get(addr, 8080, "/"),
        )
        .expect("answers");
    assert_eq!((status, body.trim()), (200, "hardened"));

    let (_, ids) = in_container(&lab, &host, &task, "id -u; id -G");
    assert_eq!(
        ids.split_whitespace().collect::<Vec<_>>(),
        ["1000", "1000", "4242"]
    );
    let (wrote, out) = in_container(&lab, &host, &task, "touch /written");
    assert!(!wrote, "writing to / succeeded: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let (_, status) = in_container(&lab, &host, &task, "cat /proc/1/status");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, set), "0000000000000000", "{set}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    let (_, init) = in_container(&lab, &host, &task, "tr '\\0' ' ' < /proc/1/cmdline");
    assert!(init.starts_with("/sbin/docker-init -- sh -c"), "{init}");
    let (_, limits) = in_container(&lab, &host, &task, "grep 'open files' /proc/1/limits");
    assert_eq!(
        limits.split_whitespace().collect::<Vec<_>>(),
        ["Max", "open", "files", "512", "1024", "files"]
    );
    let (_, hosts) = in_container(&lab, &host, &task, "cat /etc/hosts");
    assert!(hosts.contains("10.0.0.9\tdb"), "{hosts}");
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let pids_dir = if v2 {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/pids"
    };
    let pids =
        std::fs::read_to_string(format!("{pids_dir}/shoal/{task}/pids.max")).unwrap_or_default();
    assert_eq!(pids.trim(), "32");

    let inspected: Value =
        serde_json::from_str(&lab.shoal_must(&["service", "inspect", "hard"])).expect("json");
    let c = &inspected[0]["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["User"], "1000");
    assert_eq!(c["Groups"], serde_json::json!(["4242"]));
    assert_eq!(c["ReadOnly"], true);
    assert_eq!(c["Init"], true);
    assert_eq!(c["CapabilityDrop"], serde_json::json!(["ALL"]));
    assert_eq!(c["Privileges"]["NoNewPrivileges"], true);
    assert_eq!(c["Hosts"], serde_json::json!(["10.0.0.9 db"]));
    assert_eq!(c["Sysctls"]["net.ipv4.ip_unprivileged_port_start"], "0");
    assert_eq!(
        c["Ulimits"],
        serde_json::json!([{ "Name": "nofile", "Hard": 1024, "Soft": 512 }])
    );
    assert_eq!(
        c["Mounts"],
        serde_json::json!([{ "Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": { "SizeBytes": 1048576 } }])
    );

    // Refused by the managers, with nothing made.
    for (flag, value, says) in [
        ("--cap-add", "CAP_FLY", "unknown capability \"CAP_FLY\""),
        (
            "--sysctl",
            "kernel.panic=1",
            "sysctl \"kernel.panic\" is not namespaced",
        ),
        ("--ulimit", "files=1", "unknown ulimit \"files\""),
    ] {
        let out = lab
            .shoal([
                "service", "create", "--detach", "--name", "bad", flag, value, &image,
            ])
            .expect("run shoal");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
    }
    let services = lab.shoal_must(&["service", "ls", "-q"]);
    assert_eq!(
        services.lines().count(),
        1,
        "only `hard` exists: {services}"
    );

    // The node decides what only it knows: a bind whose source it lacks.
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "nobind",
        "--mount",
        "type=bind,source=/nonexistent/shoal-data,target=/data",
        &image,
    ]);
    let rejected = lab
        .wait_until("the task rejected", Duration::from_secs(60), || {
            let rows = lab.service_ps("nobind");
            rows.iter()
                .find(|r| r["State"] == "rejected")
                .cloned()
                .ok_or(format!("not rejected yet: {rows:?}"))
        })
        .expect("rejected");
    assert_eq!(
        task_error(&rejected),
        "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/shoal-data",
        "{rejected}"
    );
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
