//! Node health (a leader component): a node whose heartbeats stopped for
//! the grace period is marked down. The orchestrator acts on it: a
//! replicated task there is replaced elsewhere at once, a global one waits
//! for its node (tested here, the whole path from the missed heartbeats).

use std::sync::Arc;

use shoal_proto::types::v1::NodeState;

use crate::error::ManagerError;
use crate::heartbeats::Heartbeats;
use crate::leader::{Component, LeaderEnv};
use crate::store::Store;

pub struct NodeHealth {
    store: Arc<Store>,
    heartbeats: Arc<Heartbeats>,
}

impl Component for NodeHealth {
    const NAME: &'static str = "node health";

    fn build(env: &LeaderEnv) -> Self {
        // A new leader does not know who was alive: every node known to the
        // store gets the grace period to open a session with it.
        env.store.view(|s| {
            for node in s.nodes.values() {
                if let Some(meta) = &node.meta {
                    env.heartbeats.expect(&meta.id);
                }
            }
        });
        NodeHealth {
            store: env.store.clone(),
            heartbeats: env.heartbeats.clone(),
        }
    }

    async fn run(self) -> Result<(), ManagerError> {
        let clock = self.store.clock().clone();
        // Expired sessions are reported once: keep them until written.
        let mut expired = Vec::new();
        loop {
            clock.sleep(self.heartbeats.period()).await;
            expired.extend(self.heartbeats.expired());
            if expired.is_empty() {
                continue;
            }
            let marked = self
                .store
                .update(|state, tx| {
                    for id in &expired {
                        let Some(node) = state.nodes.get(id) else {
                            continue;
                        };
                        let ready = node
                            .status
                            .as_ref()
                            .is_some_and(|s| s.state == NodeState::Ready as i32);
                        if ready {
                            let mut node = node.clone();
                            let status = node.status.get_or_insert_with(Default::default);
                            status.state = NodeState::Down as i32;
                            status.message = "heartbeat failure".into();
                            tx.put(node);
                        }
                    }
                    Ok(())
                })
                .await;
            match marked {
                Ok(()) => expired.clear(),
                Err(e) => tracing::warn!("marking nodes down (retried): {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::sync::{Arc, Mutex};

    use shoal_proto::types::v1::{
        restart_policy::Condition, service_spec::Mode, NodeState, RestartPolicy, TaskState,
    };

    use crate::harness::{id, running, service, tasks_of, Harness, HEARTBEAT};

    fn state(harness: &Harness, node: &str) -> NodeState {
        let node = harness.node(node);
        NodeState::try_from(node.status.unwrap().state).unwrap()
    }

    #[tokio::test]
    async fn a_node_is_down_once_it_misses_heartbeats_for_the_grace_period() {
        let harness = Harness::start().await;
        let alive = harness.add_node("alive").await;
        let silent = harness.add_node("silent").await;
        harness.stop_agent(&silent);
        // Three periods (15 s) of grace: still ready just before.
        harness
            .advance(HEARTBEAT * 3 - Duration::from_millis(1))
            .await;
        assert_eq!(state(&harness, &silent), NodeState::Ready);
        // Seen within a period after the grace ran out.
        harness.advance(HEARTBEAT + Duration::from_millis(1)).await;
        assert_eq!(state(&harness, &silent), NodeState::Down);
        let node = harness.node(&silent);
        assert_eq!(node.status.unwrap().message, "heartbeat failure");
        // A node that beats stays ready however long it runs.
        harness.advance(Duration::from_secs(3600)).await;
        assert_eq!(state(&harness, &alive), NodeState::Ready);
    }

    #[tokio::test]
    async fn the_grace_follows_the_clusters_heartbeat_period() {
        let harness = Harness::start().await;
        let change = crate::controlapi::settings::SettingsChange {
            heartbeat_period_ms: Some(2_000),
            ..Default::default()
        };
        harness
            .store
            .update(|s, tx| crate::controlapi::settings::update(s, tx, &change))
            .await
            .expect("swarm update --dispatcher-heartbeat 2s");
        let silent = harness.add_node("silent").await;
        harness.stop_agent(&silent);
        // 3 periods of 2 s, judged every 2 s: down by 8 s, where the
        // default period (5 s) would give it 15 s.
        harness.advance(Duration::from_millis(5_900)).await;
        assert_eq!(state(&harness, &silent), NodeState::Ready);
        harness.advance(Duration::from_millis(2_200)).await;
        assert_eq!(state(&harness, &silent), NodeState::Down);
    }

    #[tokio::test]
    async fn a_new_leader_gives_every_known_node_the_grace_period() {
        let harness = Harness::start().await;
        let node = harness.add_node("n1").await;
        harness.stop_agent(&node);
        harness.step_down();
        harness.advance(Duration::from_secs(3600)).await;
        // Nobody leads: nobody judges.
        assert_eq!(state(&harness, &node), NodeState::Ready);
        harness.lead().await;
        harness.advance(HEARTBEAT * 3).await;
        assert_eq!(
            state(&harness, &node),
            NodeState::Ready,
            "down before its grace"
        );
        harness.advance(HEARTBEAT).await;
        assert_eq!(state(&harness, &node), NodeState::Down);
    }

    /// The most tasks of `service` ever seen running at once, from now on.
    fn most_running(harness: &Harness, service: &str) -> Arc<Mutex<usize>> {
        let most = Arc::new(Mutex::new(0));
        let (store, service, seen) = (harness.store.clone(), service.to_string(), most.clone());
        let mut events = store.subscribe();
        tokio::spawn(async move {
            while events.recv().await.is_ok() {
                let now = store.view(|s| running(s, &service).len());
                let mut seen = seen.lock().unwrap();
                *seen = (*seen).max(now);
            }
        });
        most
    }

    /// Past the grace period of a node that stopped beating.
    async fn past_grace(harness: &Harness) {
        harness.advance(HEARTBEAT * 3).await;
        harness.advance(HEARTBEAT).await;
    }

    #[tokio::test]
    async fn a_down_nodes_tasks_run_elsewhere_at_once_and_are_never_duplicated() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        // A restart delay that would show if node loss waited for it.
        let mut spec = service("web", "web", 4);
        spec.task.as_mut().unwrap().restart = Some(RestartPolicy {
            delay_ms: Some(60_000),
            ..Default::default()
        });
        let web = harness.create_service(spec).await;
        let on_b: Vec<String> = harness
            .until("2 running on each node", |s| {
                let r = running(s, &web);
                let on_b: Vec<String> = r.iter().filter(|t| t.node_id == b).map(id).collect();
                (r.len() == 4 && on_b.len() == 2).then_some(on_b)
            })
            .await;
        harness.stop_agent(&b);
        past_grace(&harness).await;
        assert_eq!(state(&harness, &b), NodeState::Down);
        // Without moving the clock: the slots are refilled on a.
        harness
            .until("4 running on a", |s| {
                let r = running(s, &web);
                (r.len() == 4 && r.iter().all(|t| t.node_id == a)).then_some(())
            })
            .await;
        let stale = harness.tasks(&web);
        for task in stale.iter().filter(|t| on_b.contains(&id(t))) {
            assert_eq!(task.desired_state, TaskState::Shutdown as i32);
        }
        // The node returns: its agent stops the stale tasks, nothing more.
        let most = most_running(&harness, &web);
        harness.reconnect(&b).await;
        harness
            .until("b's stale tasks stopped", |s| {
                tasks_of(s, &web)
                    .iter()
                    .filter(|t| on_b.contains(&id(t)))
                    .all(|t| t.observed_state() == TaskState::Shutdown)
                    .then_some(())
            })
            .await;
        harness.advance(HEARTBEAT).await;
        assert_eq!(*most.lock().unwrap(), 4, "more running than replicas");
        assert_eq!(harness.created(&web), 6, "a slot refilled twice");
        assert_eq!(harness.store.view(|s| running(s, &web).len()), 4);
    }

    #[tokio::test]
    async fn a_lost_task_is_replaced_only_if_its_restart_policy_allows() {
        let harness = Harness::start().await;
        let b = harness.add_node("b").await;
        let mut spec = service("once", "once", 1);
        spec.task.as_mut().unwrap().restart = Some(RestartPolicy {
            condition: Condition::None as i32,
            ..Default::default()
        });
        let once = harness.create_service(spec).await;
        harness
            .until("running", |s| (running(s, &once).len() == 1).then_some(()))
            .await;
        harness.add_node("a").await;
        harness.stop_agent(&b);
        past_grace(&harness).await;
        assert_eq!(state(&harness, &b), NodeState::Down);
        assert_eq!(
            harness.created(&once),
            1,
            "restart condition none, replaced"
        );
        harness.advance(HEARTBEAT * 10).await;
        assert_eq!(harness.created(&once), 1);
        // It stays its node's, and runs on when the node is back.
        harness.reconnect(&b).await;
        harness.advance(HEARTBEAT).await;
        assert_eq!(harness.store.view(|s| running(s, &once).len()), 1);
    }

    #[tokio::test]
    async fn a_global_task_waits_for_its_down_node_and_resumes_there() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        let mut spec = service("agent", "agent", 0);
        spec.mode = Some(Mode::Global(Default::default()));
        let agent = harness.create_service(spec).await;
        let on_b = harness
            .until("one task per node", |s| {
                let r = running(s, &agent);
                (r.len() == 2).then(|| r.iter().find(|t| t.node_id == b).map(id))?
            })
            .await;
        harness.stop_agent(&b);
        past_grace(&harness).await;
        assert_eq!(state(&harness, &b), NodeState::Down);
        harness.advance(HEARTBEAT * 10).await;
        let tasks = harness.tasks(&agent);
        assert_eq!(tasks.len(), 2, "replaced elsewhere: {tasks:?}");
        assert!(tasks
            .iter()
            .all(|t| t.desired_state == TaskState::Running as i32));
        harness.reconnect(&b).await;
        harness.advance(HEARTBEAT).await;
        let r = harness.store.view(|s| running(s, &agent));
        assert_eq!(r.len(), 2);
        assert!(r.iter().any(|t| id(t) == on_b), "b's own task resumes");
        assert!(r.iter().any(|t| t.node_id == a));
        assert_eq!(harness.created(&agent), 2);
    }
}
