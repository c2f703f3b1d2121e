//! The VM lab (issue 10): three Debian VMs with kernels of their own, made
//! a cluster with join tokens. On them, what the namespace lab's overlay
//! tests show (`overlay.rs`), here with a NIC between hosts and kernel
//! WireGuard under the encrypted network: names and VIPs across VMs,
//! networks kept apart, the routing mesh with the client's address, a
//! rolling update that fails no request, a connection that outlives netd,
//! and a VM that dies. Then nothing is left.
//!
//! A VM lab takes minutes to come up under emulation, and nextest runs each
//! test in a process of its own, so this is one test in phases on one boot,
//! each phase named in its messages.
//!
//! It needs QEMU and root, and fails without them. `SHOAL_VM_LAB=off`
//! switches it off explicitly (README: "The VM lab").

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shoal_e2e::lab::wait_until;
use shoal_e2e::probe::{contains, in_netns, Capture};
use shoal_e2e::vmlab::{VmLab, VmLabConfig};

/// Waits in emulated VMs are long: a container start takes seconds there.
const TIMEOUT: Duration = Duration::from_secs(600);

/// One stack for every phase. `web` has one task per VM (so the VIP
/// balances across VMs by construction, and the rolling update replaces one
/// per VM); `client` sits on the manager's VM, `who` on a worker (the VM
/// that dies at the end). Left to spreading, a busy emulated VM that missed
/// heartbeats during the deploy lost its tasks to another.
const STACK: &str = r#"
services:
  web:
    image: ${SHOAL_REGISTRY}/web:v1
    networks:
      secure:
        aliases: [www]
    ports:
      - "8080:80"
    deploy:
      replicas: 3
      placement:
        max_replicas_per_node: 1
      update_config:
        parallelism: 1
  client:
    image: ${SHOAL_REGISTRY}/web:v1
    networks: [secure]
    deploy:
      placement:
        constraints: [node.role == manager]
  db:
    image: ${SHOAL_REGISTRY}/web:v1
    networks: [back]
  echo:
    image: ${SHOAL_REGISTRY}/web:v1
    command: [nc, -ll, -p, "7000", -e, cat]
    ports:
      - "7000:7000"
  who:
    image: ${SHOAL_REGISTRY}/web:v1
    # busybox httpd gives CGI scripts the client's address.
    command:
      - sh
      - -c
      - |
        mkdir -p /w/cgi-bin
        printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%%s\\n" "$$REMOTE_ADDR"\n' > /w/cgi-bin/who
        chmod +x /w/cgi-bin/who
        exec httpd -f -p 80 -h /w
    ports:
      - "8081:80"
    deploy:
      placement:
        constraints: [node.role == worker]
  local:
    image: ${SHOAL_REGISTRY}/web:v1
    ports:
      - mode: host
        published: 8082
        target: 80
networks:
  secure:
    driver: overlay
    driver_opts:
      encrypted: ""
  back:
    driver: overlay
"#;

const SERVICES: [&str; 6] = ["web", "client", "db", "echo", "who", "local"];

fn shoal(lab: &VmLab, args: &[&str]) -> Result<String, String> {
    lab.shoal(args).map_err(|e| e.to_string())
}

fn exec(lab: &VmLab, vm: &str, script: &str) -> Result<String, String> {
    lab.exec(vm, script).map_err(|e| e.to_string())
}

/// The running tasks of a service: task id -> VM (its node's hostname).
fn running(lab: &VmLab, service: &str) -> Result<BTreeMap<String, String>, String> {
    let json = shoal(
        lab,
        &["service", "ps", "--no-trunc", service, "--format", "json"],
    )?;
    let rows = shoal_e2e::lab::json_lines(&json)?;
    Ok(rows
        .iter()
        .filter(|r| r["DesiredState"] == "Running" && r["State"] == "running")
        .map(|r| {
            (
                r["ID"].as_str().unwrap_or_default().to_string(),
                r["Node"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// The one running task of a service and its VM.
fn only_task(lab: &VmLab, service: &str) -> (String, String) {
    running(lab, &format!("vt_{service}"))
        .expect("service ps")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no running task of {service}"))
}

/// A task's hostname (its id's first 12 characters), which web serves.
fn hostname(task: &str) -> String {
    task.chars().take(12).collect()
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `script` with sh inside the container of `task` on `vm`; its
/// stdout (the exit status of the script decides success).
fn in_task(lab: &VmLab, vm: &str, task: &str, script: &str) -> Result<String, String> {
    static EXECS: AtomicU32 = AtomicU32::new(0);
    let n = EXECS.fetch_add(1, Ordering::Relaxed);
    exec(
        lab,
        vm,
        &format!(
            "ctr -n shoal task exec --exec-id probe{n} {task} sh -c {}",
            sh_quote(script)
        ),
    )
}

/// A shell pipeline that GETs `/` from `host port` (busybox nc: busybox's
/// static wget crashes in these guests), sending `header` along.
fn get(host: &str, port: u16, header: &str) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n{header}\\r\\n' | nc -w 10 {host} {port}")
}

/// The hostnames that answered `web vN <hostname>` lines in `out`.
fn served(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("web v")?.split_whitespace().nth(1))
        .map(str::to_string)
        .collect()
}

/// What a task's resolver (the embedded DNS server its resolv.conf names)
/// answered.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    Addrs(BTreeSet<Ipv4Addr>),
    NxDomain,
}

/// busybox nslookup from inside `task`: the A records of `name`.
fn resolve(lab: &VmLab, vm: &str, task: &str, name: &str) -> Result<Resolved, String> {
    let out = in_task(
        lab,
        vm,
        task,
        &format!("nslookup -type=a {name} 2>&1; true"),
    )?;
    if out.contains("NXDOMAIN") {
        return Ok(Resolved::NxDomain);
    }
    // The server's own address comes first; the answers follow `Name:`.
    let addrs: BTreeSet<Ipv4Addr> = out
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter(|l| l.starts_with("Address"))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    if addrs.is_empty() {
        Err(format!("no answer for {name}: {out}"))
    } else {
        Ok(Resolved::Addrs(addrs))
    }
}

fn addrs_of(lab: &VmLab, vm: &str, task: &str, name: &str) -> BTreeSet<Ipv4Addr> {
    match resolve(lab, vm, task, name) {
        Ok(Resolved::Addrs(a)) => a,
        other => panic!("{name} from {task}: {other:?}"),
    }
}

/// The global IPv4 addresses inside a task.
fn task_addrs(lab: &VmLab, vm: &str, task: &str) -> BTreeSet<Ipv4Addr> {
    in_task(lab, vm, task, "ip -4 -o addr show scope global")
        .expect("ip addr in the task")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
        .collect()
}

/// Bytes a VM's WireGuard devices (kernel ones: kind `wireguard`) sent.
fn wireguard_tx_bytes(lab: &VmLab, vm: &str) -> Result<u64, String> {
    let json = exec(lab, vm, "ip -s -d -j link show type wireguard")?;
    let links: Vec<serde_json::Value> =
        serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
    if links.is_empty() {
        return Err(format!("no kernel WireGuard device on {vm}"));
    }
    Ok(links
        .iter()
        .filter_map(|l| l["stats64"]["tx"]["bytes"].as_u64())
        .sum())
}

/// The VTEPs a VM's overlay devices forward to.
fn fdb_dsts(lab: &VmLab, vm: &str) -> Result<BTreeSet<String>, String> {
    let json = exec(lab, vm, "bridge -j fdb show")?;
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
    Ok(entries
        .iter()
        .filter_map(|e| e["dst"].as_str().map(str::to_string))
        .collect())
}

/// The lab's own side of the VMs' network: the namespace holding their
/// bridge, where the gateway (10.203.0.1) is the client.
struct LabSide {
    netns: PathBuf,
}

impl LabSide {
    fn http_get(&self, addr: Ipv4Addr, port: u16, path: &str) -> std::io::Result<(u16, String)> {
        let target = SocketAddr::from((addr, port));
        in_netns(&self.netns, || {
            shoal_e2e::fixtures::http_get(target, path, Duration::from_secs(10))
        })
    }

    fn connect(&self, addr: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
        let target = SocketAddr::from((addr, port));
        in_netns(&self.netns, || {
            TcpStream::connect_timeout(&target, Duration::from_secs(10))
        })
    }

    /// GETs `addr:port` until `stop`: (successes, failures with when, the
    /// versions served).
    fn hammer(
        &self,
        addr: Ipv4Addr,
        port: u16,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<(usize, Vec<String>, BTreeSet<String>)> {
        let netns = self.netns.clone();
        let target = SocketAddr::from((addr, port));
        std::thread::spawn(move || {
            in_netns(&netns, || {
                let started = std::time::Instant::now();
                let (mut ok, mut failed, mut versions) = (0, Vec::new(), BTreeSet::new());
                while !stop.load(Ordering::Relaxed) {
                    let at = started.elapsed();
                    match shoal_e2e::fixtures::http_get(target, "/", Duration::from_secs(10)) {
                        Ok((200, body)) if body.starts_with("web v") => {
                            ok += 1;
                            versions.extend(body.split_whitespace().nth(1).map(str::to_string));
                        }
                        Ok(other) => failed.push(format!("{at:.1?}: {other:?}")),
                        Err(e) => failed.push(format!("{at:.1?}: {e}")),
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                (ok, failed, versions)
            })
        })
    }
}

/// A line sent over a connection and its echo.
fn exchange(conn: &mut TcpStream, line: &str) -> std::io::Result<String> {
    conn.write_all(format!("{line}\n").as_bytes())?;
    let mut got = String::new();
    BufReader::new(conn.try_clone()?).read_line(&mut got)?;
    Ok(got.trim().to_string())
}

#[test]
fn three_vms_run_the_overlay_lab_tests_on_their_own_kernels_with_kernel_wireguard() {
    if std::env::var("SHOAL_VM_LAB").as_deref() == Ok("off") {
        eprintln!("SHOAL_VM_LAB=off: the VM lab test is switched off");
        return;
    }
    shoal_e2e::require_root();
    let lab = VmLab::up(VmLabConfig::new("t1")).unwrap_or_else(|e| panic!("VM lab up: {e}"));
    let record = lab.record().clone();
    let side = LabSide {
        netns: PathBuf::from("/run/netns").join(&record.netns),
    };
    let vm_addr = |vm: &str| record.vm(vm).expect("a lab VM").addr;
    let vms: Vec<String> = record.vms.iter().map(|v| v.name.clone()).collect();
    let phase = |what: &str| eprintln!("VM lab test: {what}");

    phase("A. three Ready nodes");
    let nodes = shoal(&lab, &["node", "ls", "--format", "json"]).expect("node ls");
    let rows = shoal_e2e::lab::json_lines(&nodes).expect("node ls rows");
    assert_eq!(
        rows.iter().filter(|n| n["Status"] == "Ready").count(),
        3,
        "three Ready nodes: {nodes}"
    );

    let stack = record.root.join("stack.yml");
    std::fs::write(&stack, STACK).expect("write the stack file");
    shoal(
        &lab,
        &["stack", "deploy", "-c", &stack.to_string_lossy(), "vt"],
    )
    .expect("stack deploy");
    let want = |s: &str| if s == "web" { 3 } else { 1 };
    wait_until("every task of the stack running", TIMEOUT, || {
        for s in SERVICES {
            let n = running(&lab, &format!("vt_{s}"))?.len();
            if n != want(s) {
                return Err(format!("{s}: {n} running of {}", want(s)));
            }
        }
        Ok(())
    })
    .expect("the stack converges");
    let web = running(&lab, "vt_web").expect("web's tasks");
    let web_vms: BTreeSet<&String> = web.values().collect();
    assert_eq!(web_vms.len(), 3, "one web task per VM: {web:?}");
    let (client, client_vm) = only_task(&lab, "client");
    phase(&format!(
        "the stack runs: web on {web:?}, the client {client} on {client_vm}"
    ));

    phase("B. web by name from another VM, over kernel WireGuard, never in the clear");
    let remote_web: BTreeSet<String> = web
        .iter()
        .filter(|(_, vm)| **vm != client_vm)
        .map(|(id, _)| hostname(id))
        .collect();
    let marker = "shoal-vm-secret-7c1e";
    let requests = format!(
        "for i in $(seq 1 12); do {}; done",
        get("web", 80, &format!("X-Marker: {marker}\\r\\n"))
    );
    let tx_before = wireguard_tx_bytes(&lab, &client_vm).expect("kernel WireGuard device");
    let client_tap = &record.vm(&client_vm).expect("client's VM").tap;
    let capture = Capture::start(&side.netns, client_tap);
    let answered = wait_until("answers from web by name", TIMEOUT, || {
        let out = in_task(&lab, &client_vm, &client, &requests)?;
        let answered = served(&out);
        if remote_web.iter().any(|h| answered.contains(h)) {
            Ok(answered)
        } else {
            Err(format!(
                "answers {answered:?}, none from the tasks on other VMs {remote_web:?}: {out}"
            ))
        }
    })
    .expect("web answers by name from another VM");
    let frames = capture.finish();
    let tx_after = wireguard_tx_bytes(&lab, &client_vm).expect("kernel WireGuard device");
    assert!(
        tx_after > tx_before,
        "the requests crossed kernel WireGuard on {client_vm} ({tx_before} -> {tx_after} bytes): {answered:?}"
    );
    assert!(
        !frames.is_empty(),
        "the capture on {client_tap} saw nothing"
    );
    assert!(
        !contains(&frames, marker.as_bytes()),
        "the marker crossed the wire between VMs in the clear"
    );

    phase("C. names, the VIP across VMs, networks apart, the published port everywhere");
    let vip = addrs_of(&lab, &client_vm, &client, "web");
    assert_eq!(vip.len(), 1, "web answers with its VIP: {vip:?}");
    for same in ["vt_web", "www"] {
        assert_eq!(addrs_of(&lab, &client_vm, &client, same), vip, "{same}");
    }
    let web_addrs: BTreeSet<Ipv4Addr> = web
        .iter()
        .flat_map(|(task, vm)| task_addrs(&lab, vm, task))
        .collect();
    wait_until("tasks.web to list every task", TIMEOUT, || {
        let tasks = addrs_of(&lab, &client_vm, &client, "tasks.web");
        if tasks.len() == 3 && tasks.is_subset(&web_addrs) && tasks.is_disjoint(&vip) {
            Ok(())
        } else {
            Err(format!(
                "tasks.web: {tasks:?}; web's tasks have {web_addrs:?}"
            ))
        }
    })
    .expect("tasks.web lists every task");
    for unknown in ["db", "vt_db", "nosuchservice"] {
        assert_eq!(
            resolve(&lab, &client_vm, &client, unknown),
            Ok(Resolved::NxDomain),
            "{unknown}"
        );
    }
    let vip = vip.into_iter().next().expect("the VIP").to_string();
    let out = in_task(
        &lab,
        &client_vm,
        &client,
        &format!("for i in $(seq 1 30); do {}; done", get(&vip, 80, "")),
    )
    .expect("30 requests through the VIP");
    let hostnames: BTreeSet<String> = web.keys().map(|t| hostname(t)).collect();
    assert_eq!(
        served(&out),
        hostnames,
        "the VIP balanced over every VM's task"
    );
    let (db, db_vm) = only_task(&lab, "db");
    for addr in task_addrs(&lab, &db_vm, &db) {
        let out = in_task(
            &lab,
            &client_vm,
            &client,
            &format!("{} 2>&1; true", get(&addr.to_string(), 80, "")),
        )
        .expect("a request to db");
        assert!(
            served(&out).is_empty(),
            "the client reached db ({addr}) across networks: {out}"
        );
    }
    for vm in &vms {
        let (status, body) = side
            .http_get(vm_addr(vm), 8080, "/")
            .unwrap_or_else(|e| panic!("{vm}:8080: {e}"));
        assert_eq!(status, 200, "{vm}: {body}");
        assert!(body.starts_with("web v1 "), "{vm}: {body}");
    }

    phase("D. the mesh answers on every VM with the client's address; host mode stays local");
    let (_, who_vm) = only_task(&lab, "who");
    let (_, local_vm) = only_task(&lab, "local");
    for vm in &vms {
        let (status, body) = wait_until(&format!("{vm}:8081 answers"), TIMEOUT, || {
            side.http_get(vm_addr(vm), 8081, "/cgi-bin/who")
        })
        .expect("the mesh answers");
        assert_eq!(status, 200, "{vm}: {body}");
        // httpd writes it as an IPv4-mapped IPv6 address.
        let seen = body
            .trim()
            .trim_start_matches("[::ffff:")
            .trim_end_matches(']');
        assert_eq!(
            seen, "10.203.0.1",
            "{vm} (who's task on {who_vm}): the backend saw another address than the client's"
        );
        let local = if *vm == local_vm {
            // Running means its process started, not that httpd listens yet.
            wait_until(&format!("{vm}:8082 answers"), TIMEOUT, || {
                side.http_get(vm_addr(vm), 8082, "/")
            })
            .map_err(|e| e.to_string())
        } else {
            side.http_get(vm_addr(vm), 8082, "/")
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            local.is_ok(),
            *vm == local_vm,
            "{vm} (local's task on {local_vm}): {local:?}"
        );
    }

    phase("E. a rolling update fails no request through the VIP or the published port");
    let hammer = format!(
        "while [ ! -e /tmp/stop ]; do \
           r=$({} 2>&1 | tail -n 1); \
           case \"$r\" in \"web v\"*) echo \"ok $r\";; *) echo \"failed at $(date +%T): $r\";; esac; \
           usleep 50000; \
         done; echo stopped",
        get(&vip, 80, "")
    );
    exec(
        &lab,
        &client_vm,
        &format!(
            "setsid nohup ctr -n shoal task exec --exec-id hammer {client} sh -c {} \
             > /root/hammer.log 2>&1 < /dev/null &",
            sh_quote(&hammer)
        ),
    )
    .expect("start the hammer in the client");
    let mesh_vm = vms.iter().find(|v| **v != client_vm).expect("another VM");
    let stop = Arc::new(AtomicBool::new(false));
    let through_mesh = side.hammer(vm_addr(mesh_vm), 8080, stop.clone());
    let v2 = format!("{}/web:v2", record.registry);
    shoal(
        &lab,
        &[
            "service",
            "update",
            "--image",
            &v2,
            "--timeout",
            "600s",
            "vt_web",
        ],
    )
    .expect("the rolling update converges");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    in_task(&lab, &client_vm, &client, "touch /tmp/stop").expect("stop the hammer");
    let log = wait_until("the hammer to stop", TIMEOUT, || {
        let log = exec(&lab, &client_vm, "cat /root/hammer.log")?;
        if log.contains("stopped") {
            Ok(log)
        } else {
            Err("still hammering".to_string())
        }
    })
    .expect("the hammer stops");
    let failed: Vec<&str> = log.lines().filter(|l| l.starts_with("failed")).collect();
    let ok = log.lines().filter(|l| l.starts_with("ok")).count();
    assert!(
        failed.is_empty(),
        "{} of {} requests through the VIP failed: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(
        log.contains("ok web v1") && log.contains("ok web v2"),
        "the VIP served both versions over the update: {log}"
    );
    let (ok, failed, versions) = through_mesh.join().expect("the mesh hammer");
    assert!(
        failed.is_empty(),
        "{} of {} requests through {mesh_vm}:8080 failed: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(
        versions.contains("v1") && versions.contains("v2"),
        "{mesh_vm}:8080 saw {versions:?}"
    );

    phase("F. a connection through the mesh survives netd killed on its VMs");
    let (_, echo_vm) = only_task(&lab, "echo");
    let entry = vms
        .iter()
        .find(|v| **v != echo_vm)
        .expect("a VM without echo");
    let mut conn = wait_until(&format!("{entry}:7000 to echo"), TIMEOUT, || {
        let mut conn = side.connect(vm_addr(entry), 7000)?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        match exchange(&mut conn, "before")? {
            got if got == "before" => Ok(conn),
            got => Err(std::io::Error::other(format!("echoed {got:?}"))),
        }
    })
    .expect("echo answers through the mesh");
    for vm in [entry, &echo_vm] {
        exec(&lab, vm, "systemctl kill -s KILL shoal-netd").expect("kill -9 netd");
    }
    for vm in [entry, &echo_vm] {
        wait_until(&format!("netd back on {vm}"), TIMEOUT, || {
            exec(&lab, vm, "systemctl is-active shoal-netd")
        })
        .expect("systemd starts netd again");
    }
    // Let the new netd go through its state before the connection is used.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        exchange(&mut conn, "after netd came back").expect("the connection lives"),
        "after netd came back"
    );
    let mut fresh = side
        .connect(vm_addr(entry), 7000)
        .expect("a new connection");
    fresh
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert_eq!(exchange(&mut fresh, "new").expect("echo"), "new");
    drop((conn, fresh));

    phase(&format!(
        "G. {who_vm} dies: the others drop it from their tables, its tasks move"
    ));
    let dead_addr = vm_addr(&who_vm).to_string();
    let others: Vec<&String> = vms.iter().filter(|v| **v != who_vm).collect();
    assert!(
        others
            .iter()
            .any(|vm| fdb_dsts(&lab, vm).expect("fdb").contains(&dead_addr)),
        "no VM forwards to {who_vm} to begin with"
    );
    lab.power_off(&who_vm).expect("power off");
    wait_until(
        &format!("{who_vm} gone from the others' tables"),
        TIMEOUT,
        || {
            for vm in &others {
                if fdb_dsts(&lab, vm)?.contains(&dead_addr) {
                    return Err(format!("{vm} still forwards to {who_vm}"));
                }
            }
            Ok(())
        },
    )
    .expect("entries removed");
    let moved = wait_until("who running on another VM", TIMEOUT, || {
        match running(&lab, "vt_who")?.into_iter().next() {
            Some((_, vm)) if vm != who_vm => Ok(vm),
            other => Err(format!("who: {other:?}")),
        }
    })
    .expect("who rescheduled");
    wait_until(&format!("{moved}:8081 answers"), TIMEOUT, || {
        side.http_get(vm_addr(&moved), 8081, "/cgi-bin/who")
    })
    .expect("who answers from its new VM");

    lab.down().expect("VM lab down leaves nothing behind");
    assert!(
        shoal_e2e::vmlab::leaks(&record).is_empty(),
        "left behind: {:?}",
        shoal_e2e::vmlab::leaks(&record)
    );
}
