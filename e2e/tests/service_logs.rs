//! `service logs` on a real lab (issue 12): a 3-replica service on 3 nodes
//! (three managers, so that two of the tasks' logs come through the
//! manager that holds their node's session, `LogRelay`) shows lines of all
//! three tasks with Swarm's prefixes, `--tail 5` five
//! per task, stderr on stderr; `-f` keeps following across a killed and
//! replaced task; a task on a node whose agent is gone gets a notice and
//! the command ends; the json-file cap rotates on the node's disk; a
//! service with the `none` driver says it keeps no logs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::test_lab;

/// Prints a numbered line to stdout and one to stderr every 100 ms.
const CHATTY: &str = "i=0; while true; do i=$((i+1)); echo \"slot $SLOT line $i\"; \
                      echo \"slot $SLOT err $i\" >&2; sleep 0.1; done";

/// Running task id (full) -> (slot, node hostname) of `service`.
fn running_tasks(lab: &Lab, service: &str) -> BTreeMap<String, (String, String)> {
    let nodes: BTreeMap<String, String> =
        shoal_e2e::lab::json_lines(&lab.shoal_must(&["node", "ls", "--format", "json"]))
            .expect("node ls json")
            .into_iter()
            .map(|n| {
                (
                    n["ID"].as_str().unwrap_or("").to_string(),
                    n["Hostname"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
    let tasks = lab.shoal_must(&[
        "service",
        "ps",
        service,
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "json",
    ]);
    shoal_e2e::lab::json_lines(&tasks)
        .expect("service ps json")
        .into_iter()
        .filter(|t| t["State"] == "running")
        .map(|t| {
            let name = t["Name"].as_str().unwrap_or("").to_string();
            let slot = name.rsplit('.').next().unwrap_or("").to_string();
            let node = t["Node"].as_str().unwrap_or("").to_string();
            let node = nodes.get(&node).cloned().unwrap_or(node);
            (t["ID"].as_str().unwrap_or("").to_string(), (slot, node))
        })
        .collect()
}

/// The prefix docker prints for a task of `chatty` (1-digit slots).
fn prefix(task_id: &str, slot: &str, node: &str) -> String {
    format!("chatty.{slot}.{}@{node}    | ", &task_id[..12])
}

fn wait_running(lab: &Lab, service: &str, n: usize) -> BTreeMap<String, (String, String)> {
    lab.wait_until(
        &format!("{n} tasks of {service} running"),
        Duration::from_secs(90),
        || {
            let tasks = running_tasks(lab, service);
            if tasks.len() == n {
                Ok(tasks)
            } else {
                Err(format!("{tasks:?}"))
            }
        },
    )
    .expect("running")
}

#[test]
fn service_logs_reads_every_node_follows_replacements_and_names_a_lost_node() {
    let mut lab = test_lab(LabConfig {
        managers: 3,
        workers: 0,
        ..LabConfig::new("t-logs")
    });
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "chatty",
        "--replicas",
        "3",
        "--replicas-max-per-node",
        "1",
        "--restart-delay",
        "0s",
        "--env",
        "SLOT={{.Task.Slot}}",
        &image,
        "sh",
        "-c",
        CHATTY,
    ]);
    let tasks = wait_running(&lab, "chatty", 3);
    let hosts: Vec<&String> = tasks.values().map(|(_, node)| node).collect();
    assert_eq!(hosts.len(), 3, "one task per node: {tasks:?}");

    // Until every task has written more than five lines.
    lab.wait_until("10 lines of each task", Duration::from_secs(30), || {
        let out = lab
            .shoal(["service", "logs", "chatty"])
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let short = tasks
            .iter()
            .filter(|(id, (slot, node))| text.matches(&prefix(id, slot, node)).count() < 10)
            .count();
        if short == 0 {
            Ok(())
        } else {
            Err(format!("{short} tasks short"))
        }
    })
    .expect("lines");

    // --tail 5: the last five records of each task, over both streams.
    let out = lab
        .shoal(["service", "logs", "--tail", "5", "chatty"])
        .expect("logs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    for (id, (slot, node)) in &tasks {
        let p = prefix(id, slot, node);
        let lines = stdout.matches(&p).count() + stderr.matches(&p).count();
        assert_eq!(lines, 5, "task {slot} on {node}:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("{p}slot {slot} line ")),
            "stdout of {slot}: {stdout}"
        );
        assert!(
            stderr.contains(&format!("{p}slot {slot} err ")),
            "stderr of {slot}: {stderr}"
        );
    }

    // -f: every task's new lines, then those of the task that replaces one.
    let mut follower = Command::new(lab.cli_path())
        .args([
            "--host",
            lab.shoal_host(),
            "service",
            "logs",
            "-f",
            "--tail",
            "0",
            "chatty",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logs -f");
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let stdout = follower.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut seen = seen.lock().unwrap();
                seen.push_str(&line);
                seen.push('\n');
            }
        })
    };
    let followed = |p: &str| seen.lock().unwrap().contains(p);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tasks.iter().all(|(id, (s, n))| followed(&prefix(id, s, n))) {
        assert!(
            Instant::now() < deadline,
            "-f saw: {}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Kill the task on m2; its replacement runs there too (one per node).
    let (victim, (slot, node)) = tasks
        .iter()
        .find(|(_, (_, node))| node == "m2")
        .map(|(id, v)| (id.clone(), v.clone()))
        .expect("a task on m2");
    let pids = lab.running_task_pids("m2").expect("pids");
    for pid in pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let replacement = lab
        .wait_until("a replacement on m2", Duration::from_secs(60), || {
            running_tasks(&lab, "chatty")
                .into_iter()
                .find(|(id, (s, n))| *id != victim && s == &slot && n == &node)
                .ok_or("not yet")
        })
        .expect("replacement");
    let deadline = Instant::now() + Duration::from_secs(30);
    let wanted = prefix(&replacement.0, &slot, &node);
    while !followed(&wanted) {
        assert!(
            Instant::now() < deadline,
            "-f never showed {wanted}: {}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let _ = reader.join();

    // The json-file cap: the newest file and max-file - 1 rotated ones.
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "capped",
        "--constraint",
        "node.hostname==m1",
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=4k",
        "--log-opt",
        "max-file=2",
        "--env",
        "SLOT=c",
        &image,
        "sh",
        "-c",
        CHATTY,
    ]);
    let capped = wait_running(&lab, "capped", 1);
    let capped_id = capped.keys().next().expect("a task").clone();
    let dir = lab
        .root()
        .join("m1")
        .join("agent")
        .join("logs")
        .join(&capped_id);
    lab.wait_until("a rotation", Duration::from_secs(30), || {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if names.iter().any(|n| n.starts_with("json.log.1")) {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .expect("rotated");
    std::thread::sleep(Duration::from_secs(2));
    let files: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .expect("log dir")
        .filter_map(|e| e.ok())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().map(|m| m.len()).unwrap_or(0),
            )
        })
        .filter(|(name, _)| name.starts_with("json.log"))
        .collect();
    assert!(files.len() <= 2, "max-file=2 keeps two files: {files:?}");
    assert!(
        files.iter().all(|(_, size)| *size <= 4096 + 512),
        "max-size=4k: {files:?}"
    );
    let out = lab
        .shoal(["service", "logs", "--tail", "3", "capped"])
        .expect("logs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        stdout.lines().count() + stderr.lines().count(),
        3,
        "{stdout}{stderr}"
    );

    // The none driver keeps nothing, and says so.
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "silent",
        "--log-driver",
        "none",
        "--env",
        "SLOT=s",
        &image,
        "sh",
        "-c",
        CHATTY,
    ]);
    wait_running(&lab, "silent", 1);
    let out = lab.shoal(["service", "logs", "silent"]).expect("logs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("logging driver is none"), "{said}");

    // A node whose agent is gone: its task gets a notice, the rest print,
    // and the command ends.
    lab.kill9("m3", "shoal-agent")
        .expect("kill the agent on m3");
    let started = Instant::now();
    let out = lab
        .shoal(["service", "logs", "--tail", "2", "chatty"])
        .expect("logs");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.status.success(), "a lost node makes the status 1");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("@m3") && said.contains("cannot be read now"),
        "{said}"
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("@m1    | ") && printed.contains("@m2    | "),
        "{printed}"
    );
}
