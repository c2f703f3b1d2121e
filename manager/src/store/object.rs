//! The kinds of stored objects and the uniform handling of their metadata.

// No object is inline: an unboxed Service or Cluster made every change
// twice its size, and inline tasks (a kilobyte or two each) made the
// vectors of a batch of thousands of writes, and of its changes, fresh
// megabytes to fault in at every commit. Tasks are shared, not boxed: the
// stored task, the change that announces it and what a node's session
// sent are one allocation.

use std::sync::Arc;

use shoal_proto::raft::v1::{store_action::Action, ObjectRef, StoreAction};
use shoal_proto::types::v1::{Cluster, Config, Meta, Network, Node, Secret, Service, Task};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Cluster,
    Node,
    Service,
    Task,
    Network,
    Secret,
    Config,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Network => "network",
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "cluster" => Kind::Cluster,
            "node" => Kind::Node,
            "service" => Kind::Service,
            "task" => Kind::Task,
            "network" => Kind::Network,
            "secret" => Kind::Secret,
            "config" => Kind::Config,
            _ => return None,
        })
    }
}

/// Any stored object.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Cluster(Box<Cluster>),
    Node(Box<Node>),
    Service(Box<Service>),
    Task(Arc<Task>),
    Network(Box<Network>),
    Secret(Box<Secret>),
    Config(Box<Config>),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Cluster(_) => Kind::Cluster,
            Object::Node(_) => Kind::Node,
            Object::Service(_) => Kind::Service,
            Object::Task(_) => Kind::Task,
            Object::Network(_) => Kind::Network,
            Object::Secret(_) => Kind::Secret,
            Object::Config(_) => Kind::Config,
        }
    }

    pub fn meta(&self) -> Option<&Meta> {
        match self {
            Object::Cluster(o) => o.meta.as_ref(),
            Object::Node(o) => o.meta.as_ref(),
            Object::Service(o) => o.meta.as_ref(),
            Object::Task(o) => o.meta.as_ref(),
            Object::Network(o) => o.meta.as_ref(),
            Object::Secret(o) => o.meta.as_ref(),
            Object::Config(o) => o.meta.as_ref(),
        }
    }

    pub fn meta_mut(&mut self) -> &mut Meta {
        let meta = match self {
            Object::Cluster(o) => &mut o.meta,
            Object::Node(o) => &mut o.meta,
            Object::Service(o) => &mut o.meta,
            Object::Task(o) => &mut Arc::make_mut(o).meta,
            Object::Network(o) => &mut o.meta,
            Object::Secret(o) => &mut o.meta,
            Object::Config(o) => &mut o.meta,
        };
        meta.get_or_insert_with(Meta::default)
    }

    pub fn id(&self) -> &str {
        self.meta().map(|m| m.id.as_str()).unwrap_or("")
    }

    pub fn into_action(self) -> StoreAction {
        let action = match self {
            Object::Cluster(o) => Action::Cluster(*o),
            Object::Node(o) => Action::Node(*o),
            Object::Service(o) => Action::Service(*o),
            Object::Task(o) => Action::Task(Arc::unwrap_or_clone(o)),
            Object::Network(o) => Action::Network(*o),
            Object::Secret(o) => Action::Secret(*o),
            Object::Config(o) => Action::Config(*o),
        };
        StoreAction {
            action: Some(action),
        }
    }
}

/// The bytes of the `WriteBatch` of `writes`, encoded from them in place:
/// building the batch first copied every task into a vector of inline
/// actions, megabytes to fault in for a large batch. Field numbers are
/// `raft.v1.WriteBatch`'s and `StoreAction`'s (a test compares this with
/// prost's own encoding of the batch).
pub fn encode_batch(writes: &[Write]) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
    use prost::Message;
    const ACTIONS: u32 = 1;
    let action_len = |w: &Write| match w {
        Write::Put(o) => object_field(o, None),
        Write::Delete(..) => w.clone().into_action().encoded_len(),
    };
    // Each length worked out once: a task's walks all of its spec.
    let lens: Vec<usize> = writes.iter().map(action_len).collect();
    let total: usize = lens
        .iter()
        .map(|&len| key_len(ACTIONS) + encoded_len_varint(len as u64) + len)
        .sum();
    let mut buf = Vec::with_capacity(total);
    for (write, len) in writes.iter().zip(lens) {
        encode_key(ACTIONS, WireType::LengthDelimited, &mut buf);
        encode_varint(len as u64, &mut buf);
        match write {
            Write::Put(o) => {
                object_field(o, Some(&mut buf));
            }
            Write::Delete(..) => write.clone().into_action().encode_raw(&mut buf),
        }
    }
    buf
}

/// The object as its field of a `StoreAction`: its encoded length (tag
/// and length prefix included), or, given `buf`, its bytes written there.
fn object_field(object: &Object, buf: Option<&mut Vec<u8>>) -> usize {
    use prost::encoding::message;
    fn field<M: prost::Message>(tag: u32, m: &M, buf: Option<&mut Vec<u8>>) -> usize {
        match buf {
            Some(buf) => {
                message::encode(tag, m, buf);
                0
            }
            None => message::encoded_len(tag, m),
        }
    }
    match object {
        Object::Cluster(m) => field(1, &**m, buf),
        Object::Node(m) => field(2, &**m, buf),
        Object::Service(m) => field(3, &**m, buf),
        Object::Task(m) => field(4, &**m, buf),
        Object::Network(m) => field(5, &**m, buf),
        Object::Secret(m) => field(7, &**m, buf),
        Object::Config(m) => field(8, &**m, buf),
    }
}

/// One write of a batch, decoded.
#[derive(Debug, Clone)]
pub enum Write {
    Put(Object),
    Delete(Kind, String),
}

impl Write {
    pub fn into_action(self) -> StoreAction {
        match self {
            Write::Put(object) => object.into_action(),
            Write::Delete(kind, id) => StoreAction {
                action: Some(Action::Delete(ObjectRef {
                    kind: kind.name().to_string(),
                    id,
                })),
            },
        }
    }

    /// `None` for an action this manager does not know (a newer peer's).
    pub fn from_action(action: StoreAction) -> Option<Write> {
        Some(match action.action? {
            Action::Cluster(o) => Write::Put(Object::from(o)),
            Action::Node(o) => Write::Put(Object::from(o)),
            Action::Service(o) => Write::Put(Object::from(o)),
            Action::Task(o) => Write::Put(Object::from(o)),
            Action::Network(o) => Write::Put(Object::from(o)),
            Action::Secret(o) => Write::Put(Object::from(o)),
            Action::Config(o) => Write::Put(Object::from(o)),
            Action::Delete(r) => Write::Delete(Kind::from_name(&r.kind)?, r.id),
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use shoal_proto::raft::v1::WriteBatch;
    use shoal_proto::types::v1::{Cluster, Meta, Network, Node, Secret, Service, Task};

    use super::*;

    #[test]
    fn a_batch_encoded_in_place_is_the_batch_prost_encodes() {
        let meta = |id: &str| {
            Some(Meta {
                id: id.into(),
                version: 300,
                ..Default::default()
            })
        };
        let writes = vec![
            Write::Put(Object::from(Cluster {
                meta: meta("c"),
                ..Default::default()
            })),
            Write::Put(Object::from(Node {
                meta: meta("n"),
                ..Default::default()
            })),
            Write::Put(Object::from(Service {
                meta: meta("s"),
                ..Default::default()
            })),
            Write::Put(Object::from(Task {
                meta: meta("t"),
                service_id: "s".repeat(200),
                slot: 3,
                ..Default::default()
            })),
            Write::Put(Object::from(Network {
                meta: meta("w"),
                ..Default::default()
            })),
            Write::Put(Object::from(Secret {
                meta: meta("x"),
                ..Default::default()
            })),
            Write::Put(Object::from(Task::default())),
            Write::Delete(Kind::Task, "t".into()),
        ];
        let batch = WriteBatch {
            actions: writes.iter().cloned().map(Write::into_action).collect(),
        };
        assert_eq!(encode_batch(&writes), batch.encode_to_vec());
        assert!(encode_batch(&[]).is_empty());
    }
}
