//! The VM lab (issue 10): three Debian VMs with kernels of their own, made
//! a cluster with join tokens, run a stack on an encrypted overlay network
//! that kernel WireGuard carries between them; then nothing is left.
//!
//! It needs QEMU and root, and fails without them. `SHOAL_VM_LAB=off`
//! switches it off explicitly (README: "The VM lab").

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_e2e::lab::wait_until;
use shoal_e2e::vmlab::{VmLab, VmLabConfig};

/// The client on the manager's VM, web on the workers': a request from the
/// client crosses VMs by construction. Left to spreading, a busy emulated
/// VM that missed heartbeats during the deploy lost its tasks to another,
/// and everything could land on one VM.
const STACK: &str = r#"
services:
  web:
    image: ${SHOAL_REGISTRY}/web:v1
    networks: [secure]
    deploy:
      replicas: 3
      placement:
        constraints: [node.role == worker]
  client:
    image: ${SHOAL_REGISTRY}/web:v1
    networks: [secure]
    deploy:
      placement:
        constraints: [node.role == manager]
networks:
  secure:
    driver: overlay
    driver_opts:
      encrypted: ""
"#;

fn shoal(lab: &VmLab, args: &[&str]) -> Result<String, String> {
    lab.shoal(args).map_err(|e| e.to_string())
}

/// The running tasks of a service: task id -> node hostname.
fn running(lab: &VmLab, service: &str) -> Result<BTreeMap<String, String>, String> {
    let json = shoal(lab, &["service", "ps", service, "--format", "json"])?;
    let rows: Vec<serde_json::Value> = if json.trim_start().starts_with('[') {
        serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?
    } else {
        json.lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{e}: {json}"))?
    };
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

/// Bytes a VM's WireGuard devices (kernel ones: kind `wireguard`) sent.
fn wireguard_tx_bytes(lab: &VmLab, vm: &str) -> Result<u64, String> {
    let json = lab
        .exec(vm, "ip -s -d -j link show type wireguard")
        .map_err(|e| e.to_string())?;
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

#[test]
fn three_vms_run_a_stack_whose_services_talk_by_name_over_kernel_wireguard() {
    if std::env::var("SHOAL_VM_LAB").as_deref() == Ok("off") {
        eprintln!("SHOAL_VM_LAB=off: the VM lab test is switched off");
        return;
    }
    shoal_e2e::require_root();
    let lab = VmLab::up(VmLabConfig::new("t1")).unwrap_or_else(|e| panic!("VM lab up: {e}"));
    let record = lab.record().clone();

    let nodes = shoal(&lab, &["node", "ls", "--format", "json"]).expect("node ls");
    assert_eq!(
        nodes.matches("\"Ready\"").count(),
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
    let timeout = Duration::from_secs(600);
    eprintln!("VM lab test: stack deployed");
    let web = wait_until("3 web tasks running", timeout, || {
        let tasks = running(&lab, "vt_web")?;
        if tasks.len() == 3 {
            Ok(tasks)
        } else {
            Err(format!("running: {tasks:?}"))
        }
    })
    .expect("web runs");
    let (client_task, client_vm) = wait_until("the client task running", timeout, || {
        running(&lab, "vt_client")?
            .into_iter()
            .next()
            .ok_or_else(|| "no client task yet".to_string())
    })
    .expect("client runs");
    let on_other_vms: BTreeSet<String> = web
        .iter()
        .filter(|(_, vm)| **vm != client_vm)
        .map(|(id, _)| id.chars().take(12).collect())
        .collect();
    assert!(
        !on_other_vms.is_empty(),
        "web runs on VMs other than the client's ({client_vm}): {web:?}"
    );

    eprintln!("VM lab test: web on {web:?}, the client {client_task} on {client_vm}");
    // From the client's container on its VM: `web` by name, answered by
    // web's tasks on the other VMs, over the encrypted network.
    let tx_before = wireguard_tx_bytes(&lab, &client_vm).expect("kernel WireGuard device");
    // busybox nc, not wget: busybox's static wget crashes in these guests.
    let fetch = format!(
        "for i in $(seq 1 12); do ctr -n shoal task exec --exec-id probe$i {client_task} \
         sh -c 'printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | nc -w 10 web 80'; done"
    );
    let answers = wait_until("answers from web by name", timeout, || {
        let out = lab.exec(&client_vm, &fetch).map_err(|e| e.to_string())?;
        let served: BTreeSet<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("web v1 "))
            .map(|h| h.trim().to_string())
            .collect();
        if on_other_vms.iter().any(|h| served.contains(h)) {
            Ok(served)
        } else {
            Err(format!(
                "answers {served:?}, none from the tasks on other VMs {on_other_vms:?}: {out}"
            ))
        }
    })
    .expect("web answers by name from another VM");
    let tx_after = wireguard_tx_bytes(&lab, &client_vm).expect("kernel WireGuard device");
    assert!(
        tx_after > tx_before,
        "the requests crossed kernel WireGuard on {client_vm} ({tx_before} -> {tx_after} bytes): {answers:?}"
    );

    lab.down().expect("VM lab down leaves nothing behind");
    assert!(
        shoal_e2e::vmlab::leaks(&record).is_empty(),
        "left behind: {:?}",
        shoal_e2e::vmlab::leaks(&record)
    );
}
