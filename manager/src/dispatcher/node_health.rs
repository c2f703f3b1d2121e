//! Node health (a leader component): a node whose heartbeats stopped for
//! the grace period is marked down.

use std::sync::Arc;

use shoal_proto::types::v1::NodeState;

use super::Heartbeats;
use crate::error::ManagerError;
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
