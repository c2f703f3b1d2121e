//! Overlay networks through the `shoal` CLI on a one-host lab, as docker's
//! `network` commands behave: `swarm init` makes Swarm's `ingress` network
//! (10.0.0.0/24, VXLAN id 4096), which is never removed nor named by a
//! service; create prints the id, ls and inspect show docker's columns and
//! keys, names and subnets are unique, a service's task gets its address
//! from the network it names, a network in use is not removed (naming the
//! service, exit 1, the other networks of the same `rm` still go), and
//! prune removes what nothing uses. A stack's services that name no
//! network are on `<stack>_default`, made and removed with the stack.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::probe::addresses_in;
use shoal_e2e::test_lab;

fn lab(name: &str) -> Lab {
    test_lab(LabConfig::new(name))
}

fn ok(lab: &Lab, args: &[&str]) -> String {
    lab.shoal_ok(args)
        .unwrap_or_else(|e| panic!("shoal {}: {e}", args.join(" ")))
}

/// Runs a command the manager (or the CLI) must refuse with exit status 1;
/// returns its stdout and stderr.
fn refused(lab: &Lab, args: &[&str]) -> (String, String) {
    let out = lab.shoal(args).expect("run shoal");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "shoal {} was not refused: {stdout}{stderr}",
        args.join(" ")
    );
    (stdout, stderr)
}

/// `network ls` rows as (id, name, driver, scope), after checking docker's header.
fn ls(lab: &Lab) -> Vec<[String; 4]> {
    let text = ok(lab, &["network", "ls"]);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"], "{text}");
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cells.len(), 4, "{l}");
            [0, 1, 2, 3].map(|i| cells[i].to_string())
        })
        .collect()
}

fn in_subnet(addr: Ipv4Addr, base: Ipv4Addr, prefix: u32) -> bool {
    let mask = u32::MAX << (32 - prefix);
    u32::from(addr) & mask == u32::from(base) & mask
}

/// The network attachments (network name, address) of the service's tasks
/// that should run, as the manager's ListTasks reports them.
fn attachments(lab: &Lab, service: &str) -> Vec<(String, String)> {
    shoal_e2e::probe::service_tasks(lab, service)
        .iter()
        .flat_map(|t| t.networks.iter())
        .map(|a| (a.network_name.clone(), a.address.clone()))
        .collect()
}

#[test]
fn networks_are_created_listed_inspected_used_and_removed_like_docker() {
    let lab = lab("t-networks");
    let image = format!("{}/web:v1", lab.registry());
    let backend_net = Ipv4Addr::new(10, 55, 0, 0);

    // Right after init: Swarm's ingress network, alone.
    let rows = ls(&lab);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1..], ["ingress", "overlay", "swarm"]);
    let inspect: Value =
        serde_json::from_str(&ok(&lab, &["network", "inspect", "ingress"])).expect("json");
    let ingress = &inspect[0];
    assert_eq!(ingress["Ingress"], true, "{ingress}");
    assert_eq!(ingress["Attachable"], false, "{ingress}");
    assert_eq!(ingress["IPAM"]["Config"][0]["Subnet"], "10.0.0.0/24");
    assert_eq!(ingress["IPAM"]["Config"][0]["Gateway"], "10.0.0.1");
    assert_eq!(
        ingress["Options"]["com.docker.network.driver.overlay.vxlanid_list"],
        "4096"
    );
    let (_, err) = refused(&lab, &["network", "rm", "ingress"]);
    assert!(
        err.contains("ingress is a pre-defined network and cannot be removed"),
        "{err}"
    );
    let (_, err) = refused(
        &lab,
        &[
            "service",
            "create",
            "-d",
            "--name",
            "mesh",
            "--network",
            "ingress",
            &image,
        ],
    );
    assert!(
        err.contains("Service cannot be explicitly attached to the ingress network \"ingress\""),
        "{err}"
    );

    // Create: the id, alone on stdout.
    let id = ok(
        &lab,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.55.0.0/24",
            "--label",
            "team=a",
            "backend",
        ],
    )
    .trim()
    .to_string();
    assert!(
        id.len() > 12 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "not an id: {id:?}"
    );

    // ls: ingress and backend, overlay, swarm scope, short ids.
    let rows = ls(&lab);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r[1] == name)
            .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
            .clone()
    };
    assert_eq!(row("backend"), [&id[..12], "backend", "overlay", "swarm"]);
    assert_eq!(row("ingress")[2..], ["overlay", "swarm"]);
    let quiet = ok(&lab, &["network", "ls", "-q", "--no-trunc"]);
    assert!(quiet.lines().any(|l| l == id), "{quiet}");

    // inspect: docker's shape for a swarm overlay network.
    let inspect: Value =
        serde_json::from_str(&ok(&lab, &["network", "inspect", "backend"])).expect("json");
    let net = &inspect[0];
    assert_eq!(net["Name"], "backend");
    assert_eq!(net["Id"], id.as_str());
    assert_eq!(
        (net["Driver"].as_str(), net["Scope"].as_str()),
        (Some("overlay"), Some("swarm"))
    );
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.55.0.0/24");
    assert_eq!(net["IPAM"]["Config"][0]["Gateway"], "10.55.0.1");
    assert_eq!(net["Labels"]["team"], "a");
    assert_eq!(net["Ingress"], false);
    let vni: u32 = net["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no vxlan id: {net}"));
    assert!(vni > 4096, "the ingress network holds 4096: {net}");

    // Names and subnets are the network's own.
    let (_, err) = refused(&lab, &["network", "create", "backend"]);
    assert!(err.contains("already exists"), "{err}");
    let (_, err) = refused(
        &lab,
        &["network", "create", "--subnet", "10.55.0.128/25", "other"],
    );
    assert!(err.contains("overlaps network backend"), "{err}");
    let (_, err) = refused(
        &lab,
        &[
            "service",
            "create",
            "-d",
            "--name",
            "lost",
            "--network",
            "nowhere",
            &image,
        ],
    );
    assert!(err.contains("network nowhere not found"), "{err}");

    // A service on backend: its task's address comes from 10.55.0.0/24.
    ok(
        &lab,
        &[
            "service",
            "create",
            "-q",
            "--name",
            "db",
            "--network",
            "backend",
            &image,
        ],
    );
    let attached = attachments(&lab, "db");
    assert_eq!(attached.len(), 1, "{attached:?}");
    assert_eq!(attached[0].0, "backend");
    let addr: Ipv4Addr = attached[0]
        .1
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("bad address {attached:?}"));
    assert!(in_subnet(addr, backend_net, 24), "{addr} not in backend");
    let pid = lab
        .wait_until("db's task runs", Duration::from_secs(20), || {
            lab.running_task_pids("m1")
                .map_err(|e| e.to_string())?
                .first()
                .copied()
                .ok_or_else(|| "no task yet".to_string())
        })
        .expect("running task");
    let inside = addresses_in(pid);
    assert!(
        inside.contains(&addr),
        "the task has {inside:?}, not {addr}"
    );

    // In use: refused naming the service, exit 1; the other network of the same rm goes.
    ok(&lab, &["network", "create", "spare"]);
    let (out, err) = refused(&lab, &["network", "rm", "backend", "spare"]);
    assert!(err.contains("in use by service db"), "{err}");
    assert_eq!(out, "spare\n");
    assert!(ls(&lab).iter().any(|r| r[1] == "backend"));

    // Once the service and its task are gone, the network goes too.
    ok(&lab, &["service", "rm", "db"]);
    lab.wait_until("network rm backend", Duration::from_secs(30), || {
        let out = lab
            .shoal(["network", "rm", "backend"])
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    })
    .map(|out| assert_eq!(out, "backend\n"))
    .expect("backend removed");
    // rm -f of a network that is not there is no error (docker's).
    ok(&lab, &["network", "rm", "-f", "backend"]);

    // Prune: asks first (no answer, nothing goes), then with -f removes the unused one.
    ok(&lab, &["network", "create", "unused"]);
    let asked = ok(&lab, &["network", "prune"]);
    assert_eq!(
        asked,
        "WARNING! This will remove all custom networks not used by at least one container.\n\
         Are you sure you want to continue? [y/N] "
    );
    assert!(ls(&lab).iter().any(|r| r[1] == "unused"));
    let pruned = ok(&lab, &["network", "prune", "-f"]);
    assert_eq!(pruned, "Deleted Networks:\nunused\n\n");
    let names: Vec<String> = ls(&lab).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(names, ["ingress"], "the ingress network stays");

    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn a_stack_brings_its_networks_and_takes_them_away() {
    let lab = lab("t-net-stack");
    let image = format!("{}/web:v1", lab.registry());
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        file.to_string_lossy().into_owned()
    };

    // An external network that is not there refuses the whole stack.
    let lost = write(
        "lost.yml",
        format!(
            "services:\n  web:\n    image: {image}\n    networks: [outside, backend]\n\
             networks:\n  outside:\n    external: true\n  backend: {{}}\n"
        ),
    );
    let (_, err) = refused(&lab, &["stack", "deploy", "-c", &lost, "lost"]);
    assert!(
        err.contains(
            "network \"outside\" is declared as external, but could not be found. You need to \
             create a swarm-scoped network before the stack is deployed"
        ),
        "{err}"
    );
    let names: Vec<String> = ls(&lab).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(names, ["ingress"], "a refused stack left a network behind");
    assert!(ok(&lab, &["service", "ls", "-q"]).trim().is_empty());

    // The stack's network, made with the subnet the file asks for.
    let file = write(
        "shop.yml",
        format!(
            "services:\n  db:\n    image: {image}\n    networks: [backend]\n\
             networks:\n  backend:\n    ipam:\n      config:\n        - subnet: 10.66.0.0/24\n"
        ),
    );
    let out = ok(&lab, &["stack", "deploy", "-c", &file, "shop"]);
    assert!(out.contains("Creating network shop_backend\n"), "{out}");
    assert!(out.contains("Creating service shop_db\n"), "{out}");
    let row = ls(&lab)
        .into_iter()
        .find(|r| r[1] == "shop_backend")
        .expect("shop_backend in network ls");
    assert_eq!(row[2..], ["overlay", "swarm"]);
    let inspect: Value =
        serde_json::from_str(&ok(&lab, &["network", "inspect", "shop_backend"])).expect("json");
    assert_eq!(inspect[0]["Labels"]["com.docker.stack.namespace"], "shop");
    // The allocator gives the new task its address a moment after the deploy.
    let addr: Ipv4Addr = lab
        .wait_until(
            "shop_db's task has an address on shop_backend",
            Duration::from_secs(10),
            || {
                let attached = attachments(&lab, "shop_db");
                attached
                    .iter()
                    .find(|(name, _)| name == "shop_backend")
                    .and_then(|(_, a)| a.split('/').next()?.parse().ok())
                    .ok_or_else(|| format!("no address on shop_backend: {attached:?}"))
            },
        )
        .expect("an address on shop_backend");
    assert!(
        in_subnet(addr, Ipv4Addr::new(10, 66, 0, 0), 24),
        "{addr} not in 10.66.0.0/24"
    );

    // Deployed again, the network is kept as it is.
    let again = ok(&lab, &["stack", "deploy", "-c", &file, "shop"]);
    assert!(!again.contains("Creating network"), "{again}");

    // stack rm takes the network away with the service.
    let out = ok(&lab, &["stack", "rm", "shop"]);
    assert!(out.contains("Removing service shop_db\n"), "{out}");
    assert!(out.contains("Removing network shop_backend\n"), "{out}");
    let names: Vec<String> = ls(&lab).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(names, ["ingress"], "the stack's network stayed");

    // A service that names no network is on `<stack>_default`, and, as it
    // publishes a port, on ingress too (the routing mesh reaches it there).
    let plain = write(
        "plain.yml",
        format!("services:\n  web:\n    image: {image}\n    ports: [\"8080:80\"]\n"),
    );
    let out = ok(&lab, &["stack", "deploy", "-c", &plain, "plain"]);
    assert!(out.contains("Creating network plain_default\n"), "{out}");
    assert!(out.contains("Creating service plain_web\n"), "{out}");
    let row = ls(&lab)
        .into_iter()
        .find(|r| r[1] == "plain_default")
        .expect("plain_default in network ls");
    assert_eq!(row[2..], ["overlay", "swarm"]);
    let inspect: Value =
        serde_json::from_str(&ok(&lab, &["network", "inspect", "plain_default"])).expect("json");
    let net = &inspect[0];
    assert_eq!(net["Labels"]["com.docker.stack.namespace"], "plain");
    let subnet = net["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_else(|| panic!("no subnet: {net}"));
    let (base, prefix) = subnet.split_once('/').expect("a CIDR");
    let (base, prefix): (Ipv4Addr, u32) = (
        base.parse().expect("subnet address"),
        prefix.parse().expect("prefix"),
    );
    assert!(
        !in_subnet(base, Ipv4Addr::new(10, 0, 0, 0), 24),
        "{subnet} is the ingress's"
    );
    // The allocator gives the new task its addresses a moment after the deploy.
    let attached = lab
        .wait_until(
            "plain_web's task has its addresses",
            Duration::from_secs(10),
            || {
                let attached = attachments(&lab, "plain_web");
                if attached.is_empty() {
                    Err("no addresses yet".to_string())
                } else {
                    Ok(attached)
                }
            },
        )
        .expect("plain_web's addresses");
    let names: Vec<&str> = attached.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["plain_default", "ingress"], "{attached:?}");
    let ip = |cidr: &str| -> Ipv4Addr {
        cidr.split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bad address {cidr}"))
    };
    let (own, mesh) = (ip(&attached[0].1), ip(&attached[1].1));
    assert!(in_subnet(own, base, prefix), "{own} not in {subnet}");
    assert!(
        in_subnet(mesh, Ipv4Addr::new(10, 0, 0, 0), 24),
        "{mesh} not on ingress"
    );
    lab.wait_until(
        "plain_web's task has its address",
        Duration::from_secs(20),
        || {
            let pids = lab.running_task_pids("m1").map_err(|e| e.to_string())?;
            pids.iter()
                .map(|pid| addresses_in(*pid))
                .find(|inside| inside.contains(&own))
                .ok_or_else(|| format!("no running task holds {own}"))
        },
    )
    .expect("the task on plain_default");
    let (_, err) = refused(&lab, &["network", "rm", "ingress"]);
    assert!(
        err.contains("ingress network cannot be removed because service plain_web depends on it"),
        "{err}"
    );

    let out = ok(&lab, &["stack", "rm", "plain"]);
    assert!(out.contains("Removing network plain_default\n"), "{out}");
    let names: Vec<String> = ls(&lab).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(names, ["ingress"], "plain_default stayed");

    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
