//! Overlay networks across a three-node lab (one manager, two workers),
//! with real containers: a stack of three services on two networks, as a
//! real stack file writes it; service names resolve from inside a task
//! through the embedded DNS server its resolv.conf names, the VIP balances
//! over tasks on every node, a published port answers on every node, and
//! networks keep apart what the file keeps apart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::probe::{in_netns, lookup, task_netns};
use shoal_e2e::test_lab;
use shoal_proto::control::v1::{ListNodesRequest, ListServicesRequest, ListTasksRequest};
use shoal_proto::types::v1::Task;

fn lab(name: &str) -> Lab {
    test_lab(LabConfig {
        workers: 2,
        ..LabConfig::new(name)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A running task of a service, where it runs.
#[derive(Debug, Clone)]
struct Placed {
    task: Task,
    /// The lab host (m1, w1, w2) of its node.
    host: String,
}

impl Placed {
    fn id(&self) -> String {
        self.task
            .meta
            .as_ref()
            .map(|m| m.id.clone())
            .unwrap_or_default()
    }

    /// Its address and gateway on the network called `network` (the
    /// stack's full network name).
    fn on(&self, network: &str) -> (Ipv4Addr, Ipv4Addr) {
        let a = self
            .task
            .networks
            .iter()
            .find(|a| a.network_name == network)
            .unwrap_or_else(|| panic!("task {} is not on {network}", self.id()));
        let ip = |s: &str| s.split('/').next().unwrap_or_default().parse().expect("ip");
        (ip(&a.address), ip(&a.gateway))
    }
}

/// The running tasks of `service`, with their hosts.
fn running(lab: &Lab, service: &str) -> Vec<Placed> {
    runtime().block_on(async {
        let mut client = lab.control_client("m1").await.expect("control client");
        let nodes: BTreeMap<String, String> = client
            .list_nodes(ListNodesRequest::default())
            .await
            .expect("list nodes")
            .into_inner()
            .nodes
            .into_iter()
            .map(|n| {
                let id = n.meta.map(|m| m.id).unwrap_or_default();
                (id, n.description.map(|d| d.hostname).unwrap_or_default())
            })
            .collect();
        let services = client
            .list_services(ListServicesRequest {
                names: vec![service.to_string()],
                labels: vec![],
            })
            .await
            .expect("list services")
            .into_inner()
            .services;
        let id = services[0].meta.as_ref().expect("meta").id.clone();
        client
            .list_tasks(ListTasksRequest {
                service_ids: vec![id],
                only_desired_running: true,
                ..Default::default()
            })
            .await
            .expect("list tasks")
            .into_inner()
            .tasks
            .into_iter()
            .filter(|t| t.observed_state() == shoal_proto::types::v1::TaskState::Running)
            .map(|task| Placed {
                host: nodes.get(&task.node_id).cloned().unwrap_or_default(),
                task,
            })
            .collect()
    })
}

/// `GET /` from inside `netns`; the body.
fn get_from(netns: &std::path::Path, addr: SocketAddr) -> std::io::Result<String> {
    in_netns(netns, || {
        shoal_e2e::fixtures::http_get(addr, "/", Duration::from_secs(3)).map(|(_, body)| body)
    })
}

const STACK: &str = r#"
version: "3.8"
services:
  web:
    image: ${SHOAL_REGISTRY}/web:v1
    deploy:
      replicas: 3
    networks:
      - front
    ports:
      - "8080:80"
  client:
    image: ${SHOAL_REGISTRY}/web:v1
    networks:
      - front
  db:
    image: ${SHOAL_REGISTRY}/web:v1
    networks:
      - back
networks:
  front:
    driver: overlay
  back:
    driver: overlay
"#;

#[test]
fn a_stack_on_two_networks_resolves_balances_across_nodes_and_keeps_networks_apart() {
    let lab = lab("t-overlay");
    let file = lab.root().join("shop.yml");
    std::fs::write(&file, STACK).expect("write the stack file");
    lab.shoal_ok(["stack", "deploy", "-c", &file.to_string_lossy(), "shop"])
        .expect("stack deploy");
    lab.wait_until(
        "the stack's five tasks running",
        Duration::from_secs(90),
        || {
            let n = running(&lab, "shop_web").len()
                + running(&lab, "shop_client").len()
                + running(&lab, "shop_db").len();
            if n == 5 {
                Ok(())
            } else {
                Err(format!("{n} running"))
            }
        },
    )
    .expect("stack converges");
    let web = running(&lab, "shop_web");
    assert_eq!(web.len(), 3, "{web:?}");
    let hosts: BTreeSet<&str> = web.iter().map(|t| t.host.as_str()).collect();
    assert_eq!(
        hosts.len(),
        3,
        "web's tasks spread over the three nodes: {hosts:?}"
    );
    let client = running(&lab, "shop_client").pop().expect("the client task");
    let db = running(&lab, "shop_db").pop().expect("the db task");
    let netns = task_netns(&lab, &client.host, &client.id());
    let (_, dns) = client.on("shop_front");

    // Names, from inside the client's namespace, at the server its
    // resolv.conf names (the gateway of its first network).
    let ask = |name: &str| {
        in_netns(&netns, || lookup(dns, name, Duration::from_secs(3)))
            .unwrap_or_else(|e| panic!("DNS query for {name}: {e}"))
    };
    let vip = ask("web");
    assert_eq!(vip.code, ResponseCode::NoError, "{vip:?}");
    assert_eq!(vip.addrs.len(), 1, "web answers with its VIP: {vip:?}");
    assert_eq!(
        ask("shop_web").addrs,
        vip.addrs,
        "the full name answers the same"
    );
    let mut tasks = ask("tasks.web").addrs;
    tasks.sort();
    let mut expected: Vec<Ipv4Addr> = web.iter().map(|t| t.on("shop_front").0).collect();
    expected.sort();
    assert_eq!(tasks, expected, "tasks.web lists every task");
    for unknown in ["db", "shop_db", "nosuchservice"] {
        let answer = ask(unknown);
        assert_eq!(answer.code, ResponseCode::NXDomain, "{unknown}: {answer:?}");
        assert!(
            answer.took < Duration::from_secs(1),
            "{unknown} took {:?}",
            answer.took
        );
    }

    // 30 requests through the VIP reach web's tasks on all three nodes.
    let vip = SocketAddr::new(vip.addrs[0].into(), 80);
    let mut served: BTreeSet<String> = BTreeSet::new();
    for i in 0..30 {
        let body = get_from(&netns, vip).unwrap_or_else(|e| panic!("request {i} to web: {e}"));
        served.insert(
            body.split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_string(),
        );
    }
    let hostnames: BTreeSet<String> = web.iter().map(|t| t.task.hostname()).collect();
    assert_eq!(served, hostnames, "the VIP balanced over every task");

    // db is on a network the client is not on: not reachable either.
    let (db_addr, _) = db.on("shop_back");
    assert!(
        get_from(&netns, SocketAddr::new(db_addr.into(), 80)).is_err(),
        "the client reached db across networks"
    );

    // The published port answers on every node, from the lab's own side.
    for host in ["m1", "w1", "w2"] {
        let addr = lab.host_addr(host).expect("host address");
        let (status, body) = lab
            .http_get(addr, 8080, "/")
            .unwrap_or_else(|e| panic!("{host}:8080: {e}"));
        assert_eq!(status, 200, "{host}: {body}");
        assert!(body.starts_with("web v1 "), "{host}: {body}");
    }

    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
