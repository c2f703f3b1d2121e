//! A Raft group in memory for the role manager: voters the test sets,
//! peers it makes unreachable, removals recorded.

use std::collections::BTreeSet;
use std::sync::Mutex;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::error::ManagerError;
use crate::raft::{removal_breaks_quorum, Contacts, Membership, NodeId};

pub struct FakeMembership {
    me: NodeId,
    voters: watch::Sender<BTreeSet<NodeId>>,
    unreachable: Mutex<BTreeSet<NodeId>>,
}

impl FakeMembership {
    /// A group of one: this leader.
    pub fn new(me: NodeId) -> FakeMembership {
        FakeMembership {
            me,
            voters: watch::channel(BTreeSet::from([me])).0,
            unreachable: Mutex::default(),
        }
    }

    pub fn add_voter(&self, id: NodeId) {
        self.voters.send_modify(|v| {
            v.insert(id);
        });
    }

    pub fn set_unreachable(&self, id: NodeId, unreachable: bool) {
        let mut set = self.unreachable.lock().unwrap_or_else(|e| e.into_inner());
        if unreachable {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }
}

#[tonic::async_trait]
impl Membership for FakeMembership {
    fn me(&self) -> NodeId {
        self.me
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        self.voters.borrow().clone()
    }

    fn removal_refusal(&self, raft_id: NodeId) -> Option<String> {
        let contacts = Contacts::default();
        let unreachable = self.unreachable.lock().unwrap_or_else(|e| e.into_inner());
        for voter in self.voters().iter().filter(|v| !unreachable.contains(v)) {
            contacts.heard_from(*voter);
        }
        removal_breaks_quorum(&self.voters(), raft_id, self.me, &contacts)
    }

    async fn remove(&self, raft_id: NodeId) -> Result<(), ManagerError> {
        self.voters.send_modify(|v| {
            v.remove(&raft_id);
        });
        Ok(())
    }

    fn changed(&self) -> BoxFuture<'static, ()> {
        let mut voters = self.voters.subscribe();
        Box::pin(async move {
            if voters.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
