//! Named volumes on a real lab (issue 12): a database-like task writes to
//! a named volume, is killed, and its replacement on the same node finds
//! the data; a new volume gets the image's content at its mount path
//! unless `volume-nocopy`; a read-only mount refuses writes; `volume ls`
//! shows each volume's node, `volume rm` of one in use is refused and of
//! one unused removes it from its node, `volume prune` keeps those in use;
//! an unknown driver is refused before anything is made.

use std::time::Duration;

use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::test_lab;

/// The pid of the one running task of `service` on m1, once it differs from `not`.
fn task_pid(lab: &Lab, service: &str, not: Option<u32>) -> u32 {
    lab.wait_until(
        &format!("{service} running"),
        Duration::from_secs(60),
        || {
            let running = lab
                .service_ps(service)
                .iter()
                .any(|r| r["State"] == "running" && r["DesiredState"] == "Running");
            let pids = lab.running_task_pids("m1").map_err(|e| e.to_string())?;
            // The task's process is the one whose environment names it.
            let needle = format!("SVC={service}");
            let pid = pids.into_iter().find(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|environ| environ.split(|b| *b == 0).any(|e| e == needle.as_bytes()))
            });
            match pid {
                Some(p) if running && Some(p) != not => Ok(p),
                other => Err(format!("running: {running}, pid {other:?}")),
            }
        },
    )
    .expect("running")
}

#[test]
fn a_named_volume_keeps_its_data_across_a_replaced_task_and_starts_with_the_image_content() {
    let lab = test_lab(LabConfig {
        workers: 0,
        ..LabConfig::new("t-vol")
    });
    let image = format!("{}/web:v1", lab.registry());
    // Counts its starts in the volume, as a database keeps its rows.
    let count =
        "n=$(cat /data/count 2>/dev/null || echo 0); echo $((n+1)) > /data/count; exec sleep 3600";
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "db",
        "--env",
        "SVC=db",
        "--restart-delay",
        "0s",
        "--mount",
        "type=volume,source=dbdata,target=/data",
        "--mount",
        "type=volume,source=etccopy,target=/etc",
        "--mount",
        "type=volume,source=dbdata,target=/ro,readonly",
        &image,
        "sh",
        "-c",
        count,
    ]);
    let first = task_pid(&lab, "db", None);
    let read = |pid: u32, path: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/root{path}"))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    assert_eq!(read(first, "/data/count").trim(), "1");
    // A new volume starts with what the image has at its mount path.
    assert!(
        read(first, "/etc/shoal-image").contains("web"),
        "the image's /etc was copied"
    );
    assert!(read(first, "/etc/passwd").contains("root:x:0:0"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the task");
    let second = task_pid(&lab, "db", Some(first));
    assert_eq!(
        read(second, "/data/count").trim(),
        "2",
        "the replacement found the data"
    );
    let volume_dir = lab.root().join("m1/agent/volumes/dbdata/_data");
    assert_eq!(
        std::fs::read_to_string(volume_dir.join("count"))
            .expect("on the node")
            .trim(),
        "2"
    );
    // Read-only where asked.
    let socket = lab.containerd_socket("m1").expect("socket");
    let task = lab
        .service_ps("db")
        .iter()
        .find(|r| r["State"] == "running")
        .map(|r| r["ID"].as_str().unwrap_or_default().to_string())
        .expect("task");
    let write = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args([
            "-n",
            "shoal",
            "task",
            "exec",
            "--exec-id",
            "w1",
            &task,
            "sh",
            "-c",
            "echo x > /ro/new",
        ])
        .output()
        .expect("ctr");
    assert!(!write.status.success(), "wrote into a read-only volume");

    // nocopy: the new volume stays empty.
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "bare",
        "--env",
        "SVC=bare",
        "--mount",
        "type=volume,source=bare,target=/srv,volume-nocopy",
        &image,
        "sh",
        "-c",
        "mkdir -p /srv && exec sleep 3600",
    ]);
    task_pid(&lab, "bare", None);
    let bare = lab.root().join("m1/agent/volumes/bare/_data");
    assert!(bare.is_dir(), "volume made on first use");

    // Each node's agent reports its volumes: `volume ls` shows the node.
    let listed = lab
        .wait_until(
            "volume ls to show dbdata on m1",
            Duration::from_secs(30),
            || {
                let json = lab.shoal_must(&["volume", "ls", "--format", "json"]);
                let rows = shoal_e2e::lab::json_lines(&json)?;
                match rows.iter().find(|r| r["Name"] == "dbdata") {
                    Some(row) => Ok(row.clone()),
                    None => Err(format!("volumes: {json}")),
                }
            },
        )
        .expect("listed");
    assert_eq!(listed["Node"], "m1", "{listed}");
    assert_eq!(listed["Driver"], "local");
    let refused = lab.shoal(["volume", "rm", "dbdata"]).expect("run shoal");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && stderr.contains("volume is in use by service(s) db on node m1"),
        "{stderr}"
    );

    // The service goes, the volume stays.
    lab.shoal_must(&["service", "rm", "db"]);
    lab.wait_until("db's container gone", Duration::from_secs(30), || {
        let pids = lab.running_task_pids("m1").map_err(|e| e.to_string())?;
        if pids.contains(&second) {
            Err(format!("{second} still runs"))
        } else {
            Ok(())
        }
    })
    .expect("removed");
    assert!(
        volume_dir.join("count").exists(),
        "the volume outlives its service"
    );
    assert_eq!(lab.shoal_must(&["volume", "rm", "dbdata"]).trim(), "dbdata");
    assert!(!volume_dir.exists(), "removed from the node");
    let pruned = lab.shoal_must(&["volume", "prune", "-f"]);
    assert!(
        pruned.contains("etccopy") && !pruned.contains("bare"),
        "{pruned}"
    );
    let left = lab.shoal_must(&["volume", "ls", "-q"]);
    assert_eq!(
        left.split_whitespace().collect::<Vec<_>>(),
        ["bare"],
        "the one in use stays"
    );

    let refused = lab
        .shoal([
            "service",
            "create",
            "--detach",
            "--name",
            "nfs",
            "--mount",
            "type=volume,source=x,target=/x,volume-driver=flocker",
            &image,
        ])
        .expect("run shoal");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("unknown volume driver \"flocker\""),
        "{stderr}"
    );
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
