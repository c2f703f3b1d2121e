//! Node health (a leader component): a node whose heartbeats stopped for
//! the grace period is marked down.

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

    use shoal_proto::types::v1::NodeState;

    use crate::harness::{Harness, HEARTBEAT};

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
}
