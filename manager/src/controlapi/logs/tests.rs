//! The reader's rules on the harness: which tasks are asked for, of which
//! node, what a down, missing or silent node gives, and following new
//! tasks. Nodes answer through a fake [`NodeLogSource`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use shoal_proto::control::v1::ServiceLogsMessage;
use shoal_proto::dispatcher::v1::PublishLogsMessage;
use shoal_proto::types::v1::{LogNotice, LogOptions, LogRecord, NodeState, NodeStatus};
use tokio::sync::mpsc;
use tonic::Status;

use super::{stream, Target};
use crate::harness::{id, running, service, Harness};
use crate::logbroker::{LogStream, NodeLogSource, NodeLogsError};

#[derive(Clone, Copy)]
enum Answer {
    /// Two lines per task, then done; with `follow`, the stream stays open.
    Lines,
    NoSession,
    Silent,
    /// Says it holds no logs of any task.
    NoLogs,
}

#[derive(Default)]
struct FakeNodes {
    answers: Mutex<HashMap<String, Answer>>,
    asked: Mutex<Vec<(String, Vec<String>)>>,
}

impl FakeNodes {
    fn answer(&self, node_id: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(node_id.into(), answer);
    }

    fn asked(&self) -> Vec<(String, Vec<String>)> {
        self.asked.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl NodeLogSource for FakeNodes {
    async fn open(
        &self,
        node_id: &str,
        task_ids: Vec<String>,
        options: LogOptions,
    ) -> Result<LogStream, NodeLogsError> {
        self.asked
            .lock()
            .unwrap()
            .push((node_id.to_string(), task_ids.clone()));
        let answer = self
            .answers
            .lock()
            .unwrap()
            .get(node_id)
            .copied()
            .unwrap_or(Answer::Lines);
        let opening = PublishLogsMessage {
            subscription_id: "s".into(),
            ..Default::default()
        };
        let message = |records: Vec<LogRecord>, notices: Vec<LogNotice>, done: bool| {
            Ok::<_, Status>(PublishLogsMessage {
                subscription_id: "s".into(),
                records,
                notices,
                done,
            })
        };
        let stream: LogStream = match answer {
            Answer::NoSession => return Err(NodeLogsError::NoSession(Vec::new())),
            Answer::Silent => Box::pin(futures::stream::pending()),
            Answer::NoLogs => {
                let notices = task_ids
                    .iter()
                    .map(|t| LogNotice {
                        task_id: t.clone(),
                        message: "no logs here".into(),
                        no_logs: true,
                    })
                    .collect();
                Box::pin(futures::stream::iter([
                    Ok(opening),
                    message(Vec::new(), notices, true),
                ]))
            }
            Answer::Lines => {
                let records = task_ids
                    .iter()
                    .flat_map(|t| (1..=2).map(move |n| line(t, n)))
                    .collect();
                let lines = futures::stream::iter([
                    Ok(opening),
                    message(records, Vec::new(), !options.follow),
                ]);
                if options.follow {
                    Box::pin(lines.chain(futures::stream::pending()))
                } else {
                    Box::pin(lines)
                }
            }
        };
        Ok(stream)
    }
}

fn line(task_id: &str, n: u32) -> LogRecord {
    LogRecord {
        task_id: task_id.into(),
        time_ns: n as i64,
        data: format!("line {n} of {task_id}\n").into_bytes(),
        ..Default::default()
    }
}

/// A harness with nodes n1..n3 and a service `web` of 3 replicas, one on
/// each, all running.
async fn web_on_three_nodes() -> (Harness, String) {
    let harness = Harness::start().await;
    for node in ["n1", "n2", "n3"] {
        harness.add_node(node).await;
    }
    let mut spec = service("web", "web", 3);
    spec.task.as_mut().unwrap().max_replicas_per_node = 1;
    let web = harness.create_service(spec).await;
    harness
        .until("3 running", |s| (running(s, &web).len() == 3).then_some(()))
        .await;
    (harness, web)
}

fn reading(
    harness: &Harness,
    nodes: &Arc<FakeNodes>,
    target: Target,
    options: LogOptions,
) -> mpsc::Receiver<Result<ServiceLogsMessage, Status>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(stream(
        harness.store.clone(),
        nodes.clone(),
        target,
        options,
        Duration::from_millis(300),
        tx,
    ));
    rx
}

/// Everything read until the stream ends (fails after 5 s).
async fn read_to_end(
    mut rx: mpsc::Receiver<Result<ServiceLogsMessage, Status>>,
) -> Vec<ServiceLogsMessage> {
    let mut all = Vec::new();
    let read = async {
        while let Some(message) = rx.recv().await {
            all.push(message.expect("a message"));
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the logs ended");
    all
}

fn lines(messages: &[ServiceLogsMessage]) -> Vec<String> {
    let mut lines: Vec<String> = messages
        .iter()
        .flat_map(|m| &m.records)
        .map(|r| String::from_utf8_lossy(&r.data).trim_end().to_string())
        .collect();
    lines.sort();
    lines
}

fn notices(messages: &[ServiceLogsMessage]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| &m.notices)
        .map(|n| n.message.clone())
        .collect()
}

#[tokio::test]
async fn every_node_is_asked_once_for_its_tasks_and_the_logs_end() {
    let (harness, web) = web_on_three_nodes().await;
    let nodes = Arc::new(FakeNodes::default());
    let rx = reading(
        &harness,
        &nodes,
        Target::Service(web.clone()),
        LogOptions::default(),
    );
    let messages = read_to_end(rx).await;

    let tasks = harness.tasks(&web);
    let mut expected: Vec<String> = tasks
        .iter()
        .flat_map(|t| (1..=2).map(move |n| format!("line {n} of {}", id(t))))
        .collect();
    expected.sort();
    assert_eq!(lines(&messages), expected);
    let mut asked = nodes.asked();
    asked.sort();
    assert_eq!(asked.len(), 3, "one question per node: {asked:?}");
    for (node, ids) in &asked {
        let on_node: Vec<String> = tasks
            .iter()
            .filter(|t| &t.node_id == node)
            .map(id)
            .collect();
        assert_eq!(ids, &on_node);
    }
    // Each task is described once, before its first line.
    let mut described = Vec::new();
    for message in &messages {
        described.extend(message.tasks.iter().map(|t| t.task_id.clone()));
        for record in &message.records {
            assert!(
                described.contains(&record.task_id),
                "{} undescribed",
                record.task_id
            );
        }
    }
    described.sort();
    let mut ids: Vec<String> = tasks.iter().map(id).collect();
    ids.sort();
    assert_eq!(described, ids);
    let n1 = messages
        .iter()
        .flat_map(|m| &m.tasks)
        .find(|t| t.node_id == "node-n1")
        .expect("a task on n1");
    assert_eq!(
        (n1.node_hostname.as_str(), n1.service_name.as_str()),
        ("n1", "web")
    );
}

#[tokio::test]
async fn a_node_that_is_down_missing_or_silent_gets_a_notice_not_a_hang() {
    let (harness, web) = web_on_three_nodes().await;
    harness.stop_agent("node-n1");
    harness
        .store
        .update(|s, tx| {
            let mut node = s.nodes["node-n1"].clone();
            node.status = Some(NodeStatus {
                state: NodeState::Down as i32,
                ..Default::default()
            });
            tx.put(node);
            Ok(())
        })
        .await
        .unwrap();
    let nodes = Arc::new(FakeNodes::default());
    nodes.answer("node-n2", Answer::NoSession);
    nodes.answer("node-n3", Answer::Silent);
    let rx = reading(
        &harness,
        &nodes,
        Target::Service(web),
        LogOptions::default(),
    );
    let mut said = notices(&read_to_end(rx).await);
    said.sort();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(said[0].contains("node n1 is down"), "{said:?}");
    assert!(
        said[1].contains("node n2: the node has no session with any manager"),
        "{said:?}"
    );
    assert!(said[2].contains("node n3 did not answer"), "{said:?}");
    // The down node was not asked at all.
    assert!(nodes.asked().iter().all(|(n, _)| n != "node-n1"));
}

#[tokio::test]
async fn a_task_without_logs_is_said_only_when_named() {
    let (harness, web) = web_on_three_nodes().await;
    let nodes = Arc::new(FakeNodes::default());
    for node in ["node-n1", "node-n2", "node-n3"] {
        nodes.answer(node, Answer::NoLogs);
    }
    let rx = reading(
        &harness,
        &nodes,
        Target::Service(web.clone()),
        LogOptions::default(),
    );
    assert_eq!(notices(&read_to_end(rx).await), Vec::<String>::new());

    let task = id(&harness.tasks(&web)[0]);
    let rx = reading(&harness, &nodes, Target::Task(task), LogOptions::default());
    assert_eq!(
        notices(&read_to_end(rx).await),
        vec!["no logs here".to_string()]
    );
}

#[tokio::test]
async fn following_goes_on_with_the_task_that_replaces_one() {
    let (harness, web) = web_on_three_nodes().await;
    let nodes = Arc::new(FakeNodes::default());
    let follow = LogOptions {
        follow: true,
        ..Default::default()
    };
    let mut rx = reading(&harness, &nodes, Target::Service(web.clone()), follow);
    let mut seen = Vec::new();
    assert_eq!(read_lines(&mut rx, &mut seen, 6).await.len(), 6);

    let first = harness.tasks(&web)[0].clone();
    harness.exit(&id(&first), 137).await;
    let replacement = harness
        .until("a replacement runs", |s| {
            running(s, &web)
                .into_iter()
                .find(|t| t.slot == first.slot && id(t) != id(&first))
        })
        .await;
    let seen = read_lines(&mut rx, &mut seen, 8).await;
    assert!(
        seen.contains(&format!("line 1 of {}", id(&replacement))),
        "{seen:?}"
    );
    // The task that ended was not asked for again.
    let asked_for_first = nodes
        .asked()
        .iter()
        .filter(|(_, ids)| ids.contains(&id(&first)))
        .count();
    assert_eq!(asked_for_first, 1);
}

/// Reads until `seen` holds `want` lines (fails after 5 s).
async fn read_lines(
    rx: &mut mpsc::Receiver<Result<ServiceLogsMessage, Status>>,
    seen: &mut Vec<String>,
    want: usize,
) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while seen.len() < want {
            let message = rx.recv().await.expect("still following").unwrap();
            seen.extend(lines(&[message]));
        }
    })
    .await
    .expect("the lines came");
    seen.clone()
}

#[tokio::test]
async fn an_unknown_name_is_refused_with_dockers_words() {
    let (harness, web) = web_on_three_nodes().await;
    let found = harness.store.view(|s| Target::find(s, "web"));
    assert_eq!(found, Ok(Target::Service(web)));
    let missing = harness.store.view(|s| Target::find(s, "nope"));
    assert_eq!(missing, Err("no such task or service: nope".to_string()));
}

#[tokio::test]
async fn a_task_whose_driver_keeps_nothing_says_so_without_asking_its_node() {
    let harness = Harness::start().await;
    harness.add_node("n1").await;
    let mut spec = service("quiet", "quiet", 1);
    spec.task.as_mut().unwrap().log_driver = Some(shoal_proto::types::v1::LogDriver {
        name: "none".into(),
        ..Default::default()
    });
    let quiet = harness.create_service(spec).await;
    harness
        .until("running", |s| (running(s, &quiet).len() == 1).then_some(()))
        .await;
    let nodes = Arc::new(FakeNodes::default());
    let rx = reading(
        &harness,
        &nodes,
        Target::Service(quiet),
        LogOptions::default(),
    );
    assert_eq!(
        notices(&read_to_end(rx).await),
        vec!["the task's logging driver is none: it keeps no logs".to_string()]
    );
    assert!(nodes.asked().is_empty());
}
