//! The foundation issue's acceptance checks on a one-manager lab: a stack of
//! three web:v1 replicas runs, its published port spreads requests over the
//! tasks, and `stack rm` leaves nothing of the stack on the node.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_e2e::lab::{self, Lab, LabConfig};
use shoal_e2e::test_lab;

const STACK: &str = "web";
const PUBLISHED_PORT: u16 = 8080;
const REPLICAS: usize = 3;

fn compose_file() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/web.yml").to_string()
}

fn lab(name: &str) -> Lab {
    test_lab(LabConfig::new(name))
}

/// `ctr` against m1's containerd, in shoal's containerd namespace.
fn ctr(lab: &Lab, args: &[&str]) -> String {
    let socket = lab.containerd_socket("m1").expect("m1 containerd");
    let out = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["--namespace", "shoal"])
        .args(args)
        .output()
        .expect("run ctr");
    assert!(out.status.success(), "ctr {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pids of the containerd tasks that are running on m1.
fn running_tasks(lab: &Lab) -> Vec<u32> {
    lab.running_task_pids("m1").expect("m1 tasks")
}

fn deploy(lab: &Lab) {
    lab.shoal_ok(["stack", "deploy", "-c", &compose_file(), STACK])
        .expect("stack deploy");
}

fn wait_for_replicas(lab: &Lab, timeout: Duration) -> Vec<u32> {
    lab.wait_until("3 running web:v1 tasks on m1", timeout, || {
        let pids = running_tasks(lab);
        if pids.len() == REPLICAS {
            Ok(pids)
        } else {
            Err(format!("{} running", pids.len()))
        }
    })
    .expect("replicas running")
}

#[test]

fn stack_deploy_runs_three_web_replicas_within_30s() {
    let lab = lab("t-found-deploy");
    let start = Instant::now();
    deploy(&lab);
    wait_for_replicas(&lab, Duration::from_secs(30));
    assert!(start.elapsed() <= Duration::from_secs(30));

    let services = lab.shoal_ok(["service", "ls"]).expect("service ls");
    assert!(services.contains("web_web"), "{services}");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]

fn published_port_spreads_30_requests_over_at_least_two_tasks() {
    let lab = lab("t-found-port");
    deploy(&lab);
    wait_for_replicas(&lab, Duration::from_secs(30));
    let m1 = lab.host_addr("m1").expect("m1");
    // Containers run a moment before their agent's report reaches the
    // managers, and only reported tasks are backends: wait for what a
    // user watches, every task Running in `service ps`.
    lab.wait_until(
        "3 tasks Running in service ps",
        Duration::from_secs(10),
        || {
            let running = lab
                .service_ps("web_web")
                .iter()
                .filter(|r| {
                    r["CurrentState"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("Running"))
                })
                .count();
            if running == REPLICAS {
                Ok(())
            } else {
                Err(format!("{running} running"))
            }
        },
    )
    .expect("tasks reported running");

    // The port may answer a moment after the tasks run (rules land after start).
    lab.wait_until("published port answers", Duration::from_secs(10), || {
        lab.http_get(m1, PUBLISHED_PORT, "/")
    })
    .expect("published port");

    // netd learns of each running task from the managers' view a moment
    // after `service ps` shows it: the spread may take that moment.
    lab.wait_until(
        "30 requests spread over at least two tasks",
        Duration::from_secs(5),
        || {
            let mut backends = BTreeSet::new();
            for i in 0..30 {
                let (status, body) = lab
                    .http_get(m1, PUBLISHED_PORT, "/")
                    .unwrap_or_else(|e| panic!("request {i}: {e}"));
                assert_eq!(status, 200, "request {i}: {body}");
                assert!(body.starts_with("web v1 "), "request {i}: {body}");
                backends.insert(body.trim().to_string());
            }
            if backends.len() >= 2 {
                Ok(())
            } else {
                Err(format!("30 requests reached only {backends:?}"))
            }
        },
    )
    .expect("the published port balances");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// Network namespace inode of a process: what names its namespace in
/// `/run/netns` bind mounts and in mountinfo (`net:[inode]`).
fn netns_inode(pid: u32) -> String {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("ns link");
    link.to_string_lossy().into_owned()
}

fn host_links(lab: &Lab) -> BTreeSet<String> {
    let out = lab.exec("m1", &["ip", "-br", "link"]).expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn host_ruleset(lab: &Lab) -> String {
    let out = lab.exec("m1", &["nft", "list", "ruleset"]).expect("nft");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Task addresses, read inside each task's network namespace.
fn task_addresses(pids: &[u32]) -> Vec<String> {
    pids.iter()
        .flat_map(|pid| shoal_e2e::probe::addresses_in(*pid))
        .map(|ip| ip.to_string())
        .collect()
}

#[test]

fn stack_rm_leaves_no_container_netns_veth_or_nft_rule() {
    let lab = lab("t-found-rm");
    let links_before = host_links(&lab);
    deploy(&lab);
    let pids = wait_for_replicas(&lab, Duration::from_secs(30));
    let netns: Vec<String> = pids.iter().map(|p| netns_inode(*p)).collect();
    let addrs = task_addresses(&pids);
    // One on the stack's default network, one on ingress (it publishes).
    assert_eq!(
        addrs.len(),
        2 * REPLICAS,
        "each task has an address on both its networks: {addrs:?}"
    );

    lab.shoal_ok(["stack", "rm", STACK]).expect("stack rm");
    lab.wait_until(
        "no container of the stack on m1",
        Duration::from_secs(30),
        || {
            let containers = ctr(&lab, &["containers", "ls", "-q"]);
            let tasks = ctr(&lab, &["tasks", "ls", "-q"]);
            if containers.trim().is_empty() && tasks.trim().is_empty() {
                Ok(())
            } else {
                Err(format!("containers: {containers} tasks: {tasks}"))
            }
        },
    )
    .expect("containers removed");

    // Namespaces: no bind mount (in /run/netns or anywhere) of a task's netns.
    lab.wait_until(
        "task network namespaces released",
        Duration::from_secs(10),
        || {
            let mountinfo =
                std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
            let left: Vec<&String> = netns
                .iter()
                .filter(|ns| mountinfo.contains(ns.as_str()))
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("still mounted: {left:?}"))
            }
        },
    )
    .expect("netns");

    let links_after = host_links(&lab);
    assert_eq!(links_before, links_after, "links left in m1 by the stack");

    let rules = host_ruleset(&lab);
    assert!(
        !rules.contains(&PUBLISHED_PORT.to_string()),
        "published port rule left:\n{rules}"
    );
    for addr in &addrs {
        assert!(
            !rules.contains(addr.as_str()),
            "rule for task {addr} left:\n{rules}"
        );
    }

    let name = lab.name().to_string();
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
    assert!(lab::leaks(&name).is_empty());
}

/// `service ps` of the example stack's service, untruncated, lower-cased.
fn service_ps(lab: &Lab) -> String {
    lab.shoal_ok(["service", "ps", "--no-trunc", "web_web"])
        .expect("service ps")
        .to_lowercase()
}

fn container_ids(lab: &Lab) -> BTreeSet<String> {
    ctr(lab, &["containers", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_killed_task_is_replaced_within_10s_and_ps_shows_its_exit_code() {
    let lab = lab("t-found-kill");
    deploy(&lab);
    let pids = wait_for_replicas(&lab, Duration::from_secs(30));
    let victim = pids[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the task's process");
    let killed_at = Instant::now();
    lab.wait_until(
        "a replacement task running",
        Duration::from_secs(10),
        || {
            let now = running_tasks(&lab);
            if now.len() == REPLICAS && !now.contains(&victim) {
                Ok(())
            } else {
                Err(format!("running pids {now:?}"))
            }
        },
    )
    .expect("replacement within 10 s");
    assert!(killed_at.elapsed() <= Duration::from_secs(10));
    let ps = service_ps(&lab);
    assert!(
        ps.contains("137"),
        "service ps does not show the exit code 137:\n{ps}"
    );
    assert!(
        ps.contains("failed"),
        "service ps does not show the failed task:\n{ps}"
    );
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn kill_9_of_manager_and_agent_keeps_the_same_containers_running() {
    let mut lab = lab("t-found-crash");
    deploy(&lab);
    let pids = wait_for_replicas(&lab, Duration::from_secs(30));
    let ids = container_ids(&lab);
    let tasks_before = lab
        .shoal_ok(["service", "ps", "-q", "web_web"])
        .expect("ps");

    lab.kill9_and_restart("m1", "shoal-manager")
        .expect("restart manager");
    lab.kill9_and_restart("m1", "shoal-agent")
        .expect("restart agent");
    lab.wait_until(
        "the node is back and ready",
        Duration::from_secs(30),
        || {
            let nodes = lab.shoal_ok(["node", "ls"]).map_err(|e| e.to_string())?;
            if nodes.to_lowercase().contains("ready") {
                Ok(())
            } else {
                Err(nodes)
            }
        },
    )
    .expect("node ready");
    // Give the restarted agent time to do something wrong, if it would.
    std::thread::sleep(Duration::from_secs(3));
    let mut after = running_tasks(&lab);
    let mut before = pids.clone();
    after.sort();
    before.sort();
    assert_eq!(after, before, "the running containers changed");
    assert_eq!(
        container_ids(&lab),
        ids,
        "containers were replaced or duplicated"
    );
    let tasks_after = lab
        .shoal_ok(["service", "ps", "-q", "web_web"])
        .expect("ps");
    assert_eq!(tasks_after, tasks_before, "the task set changed");
    let services = lab.shoal_ok(["service", "ls"]).expect("service ls");
    assert!(services.contains("3/3"), "{services}");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn an_image_update_moves_every_task_to_v2_while_the_service_answers() {
    let lab = lab("t-found-update");
    deploy(&lab);
    wait_for_replicas(&lab, Duration::from_secs(30));
    let m1 = lab.host_addr("m1").expect("m1");
    lab.wait_until("published port answers", Duration::from_secs(10), || {
        lab.http_get(m1, PUBLISHED_PORT, "/")
    })
    .expect("published port");
    let v2 = format!("{}/web:v2", lab.registry());
    lab.shoal_ok(["service", "update", "-d", "--image", &v2, "web_web"])
        .expect("service update");
    let (mut ok, mut failed) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            Instant::now() < deadline,
            "not all on v2 after 90 s ({ok} ok, {failed} failed)"
        );
        let mut bodies = BTreeSet::new();
        for _ in 0..6 {
            match lab.http_get(m1, PUBLISHED_PORT, "/") {
                Ok((200, body)) => {
                    ok += 1;
                    bodies.insert(
                        body.split_whitespace()
                            .take(2)
                            .collect::<Vec<_>>()
                            .join(" "),
                    );
                }
                _ => failed += 1,
            }
        }
        let ps = service_ps(&lab);
        let running_v1 = ps
            .lines()
            .any(|l| l.contains("web:v1") && l.contains("running"));
        if bodies.len() == 1 && bodies.contains("web v2") && !running_v1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        failed * 10 <= ok,
        "the service did not stay reachable: {failed} failed, {ok} answered"
    );
    // The last v1 task is gone; its v2 replacement may still be starting
    // (stop-first).
    lab.wait_until(
        "every replica running again",
        Duration::from_secs(30),
        || {
            let running = running_tasks(&lab);
            match running.len() == REPLICAS {
                true => Ok(()),
                false => Err(format!("running: {running:?}")),
            }
        },
    )
    .unwrap_or_else(|e| panic!("after the update: {e}"));
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let lab = lab("t-found-bad");
    // A compose syntax error: non-zero exit, line and column, nothing deployed.
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, "services:\n  web:\n    image: [unclosed\n").expect("write");
    let out = lab
        .shoal(["stack", "deploy", "-c", &broken.to_string_lossy(), "broken"])
        .expect("run shoal");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("line") && stderr.contains("column"),
        "{stderr}"
    );
    let services = lab.shoal_ok(["service", "ls", "-q"]).expect("service ls");
    assert!(
        services.trim().is_empty(),
        "something was deployed: {services}"
    );

    // A published port already taken.
    let v1 = format!("{}/web:v1", lab.registry());
    lab.shoal_ok([
        "service", "create", "-d", "--name", "first", "-p", "9090:80", &v1,
    ])
    .expect("first service");
    let out = lab
        .shoal([
            "service", "create", "-d", "--name", "second", "-p", "9090:80", &v1,
        ])
        .expect("run shoal");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("9090/tcp is already published by service first"),
        "{stderr}"
    );

    // A stack refused anywhere changes nothing: not the secret it makes,
    // not the services before the one that fails.
    let secret_file = dir.path().join("pw.txt");
    std::fs::write(&secret_file, "hunter2").expect("write");
    let stack = |name: &str, ports: [u16; 2], external: &str| {
        let file = dir.path().join(format!("{name}.yml"));
        let [a, b] = ports;
        std::fs::write(
            &file,
            format!(
                "services:\n  a:\n    image: {v1}\n    ports: [\"{a}:80\"]\n    secrets: [pw]\n\
                 \x20 b:\n    image: {v1}\n    ports: [\"{b}:80\"]\n    secrets: [{external}]\n\
                 secrets:\n  pw:\n    file: {}\n  {external}:\n    external: true\n",
                secret_file.display()
            ),
        )
        .expect("write");
        lab.shoal(["stack", "deploy", "-c", &file.to_string_lossy(), name])
            .expect("run shoal")
    };
    let before = lab.shoal_ok(["service", "ls", "-q"]).expect("service ls");
    let out = stack("halfway", [9191, 9192], "not_there");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret not_there not found"), "{stderr}");
    lab.shoal_ok(["secret", "create", "shared", &secret_file.to_string_lossy()])
        .expect("secret create");
    let out = stack("halfway", [9191, 9090], "shared");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("9090/tcp is already published by service first"),
        "{stderr}"
    );
    assert_eq!(
        lab.shoal_ok(["service", "ls", "-q"]).expect("service ls"),
        before,
        "a refused stack left services behind"
    );
    let secrets = lab.shoal_ok(["secret", "ls"]).expect("secret ls");
    assert!(
        !secrets.contains("halfway_pw"),
        "a refused stack left its secret behind: {secrets}"
    );
    // The same stack with free ports deploys whole.
    let out = stack("halfway", [9191, 9192], "shared");
    assert!(out.status.success(), "{out:?}");
    let services = lab.shoal_ok(["service", "ls"]).expect("service ls");
    assert!(
        services.contains("halfway_a") && services.contains("halfway_b"),
        "{services}"
    );

    // An image that does not exist: the task is rejected with the registry's words.
    let missing = format!("{}/nope:v9", lab.registry());
    lab.shoal_ok(["service", "create", "-d", "--name", "missing", &missing])
        .expect("create with a missing image");
    lab.wait_until("the task rejected", Duration::from_secs(30), || {
        let ps = lab
            .shoal_ok(["service", "ps", "--no-trunc", "missing"])
            .map_err(|e| e.to_string())?
            .to_lowercase();
        if ps.contains("rejected") && ps.contains("unknown") && ps.contains("nope:v9") {
            Ok(())
        } else {
            Err(ps)
        }
    })
    .expect("rejected with the registry's error");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
