//! What Redis Cluster needs beyond the cluster client's key routing: the primaries to walk
//! (each `SCAN` is one node's), the nodes the pub/sub connection may listen on, and the
//! fingerprint of a key that a walk may meet on two nodes.
//!
//! Commands on keys go through `ClusterConnection` (see pool.rs), which routes each by its
//! slot and follows `MOVED` and `ASK`; multi-key reads are split by slot here (`Pool::mget`).
//! What the client does not do is walk the keyspace: `SCAN` is sent once per primary (routed
//! by a slot that primary serves), from the slot map `CLUSTER SLOTS` answers.
//!
//! The one pattern subscription is classic `PSUBSCRIBE` on one node: in a cluster every node,
//! replicas too, receives every `PUBLISH` over the cluster bus, so one node sees every
//! completion. When that node fails, the dispatcher's next connection goes to the next node it
//! knows (the seeds, and every node the slot map named since), and its recheck wakes the
//! waiters whose task finished meanwhile.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use redis::{ConnectionAddr, ConnectionInfo, Value};
use tokio::runtime::Handle;

use super::pool::Pool;
use crate::BackendError;

/// Where the waiters' pub/sub connection is made: the one server, or a node of the cluster.
#[derive(Debug)]
pub(crate) enum Subscriber {
    Single(Box<redis::Client>),
    Cluster(Arc<Listeners>),
}

impl Subscriber {
    /// A new pub/sub connection; on a cluster to the next node known, after the one the last
    /// connection went to.
    pub(crate) async fn pubsub(
        &self,
        pool: &Arc<Pool>,
        runtime: &Handle,
    ) -> Result<redis::aio::PubSub, redis::RedisError> {
        match self {
            Subscriber::Single(client) => {
                super::connect::warn_if_insecure(client);
                client.get_async_pubsub().await
            }
            Subscriber::Cluster(listeners) => {
                let ((host, port), client) = listeners.next_client()?;
                super::connect::warn_if_insecure(&client);
                let pubsub = client.get_async_pubsub().await?;
                tracing::debug!(host = %host, port, "resulthub.redis.pubsub_node");
                // The nodes known by the next failure: learnt apart from this connection,
                // which must not wait on it.
                let listeners = Arc::clone(listeners);
                let pool = Arc::downgrade(pool);
                runtime.spawn(async move {
                    if let Some(pool) = pool.upgrade() {
                        listeners.discover(&pool).await;
                    }
                });
                Ok(pubsub)
            }
        }
    }
}

/// A node as the cluster names it: host (an IP, or a name with `cluster-preferred-endpoint-type
/// hostname`) and port.
pub(crate) type Node = (String, u16);

/// A primary a walk visits: its node id, and a slot it serves, that the walk's commands are
/// routed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Primary {
    pub(crate) id: String,
    pub(crate) slot: u16,
}

/// Each primary that owns slots now, in address order, with its lowest slot, from `CLUSTER
/// SLOTS`: a command that is about a node, not a key (`SCAN`), is routed to "the primary of
/// this slot". Routed so rather than by address, a command the client sends again after a
/// failover goes to the promoted replica instead of failing on a node that is gone (and a
/// command routed by address that fails makes the cluster client reconnect to its seeds, which
/// under a failover can stall it). The slot may move to another node meanwhile (a resharding
/// moves a node's lowest slots first): the walk checks each step's node by its id (see
/// `Inner::next_keys`).
pub(crate) async fn primaries(pool: &Pool) -> Result<Vec<Primary>, BackendError> {
    let reply: Value = pool.query(redis::cmd("CLUSTER").arg("SLOTS")).await?;
    let mut primaries: Vec<(Node, Primary)> = slot_ranges(&reply)?
        .into_iter()
        .filter_map(|range| {
            range.nodes.into_iter().next().map(|(node, id)| {
                (
                    node,
                    Primary {
                        id,
                        slot: range.start,
                    },
                )
            })
        })
        .collect();
    primaries.sort_by(|a, b| (&a.0, a.1.slot).cmp(&(&b.0, b.1.slot)));
    primaries.dedup_by(|a, b| a.0 == b.0);
    Ok(primaries.into_iter().map(|(_, primary)| primary).collect())
}

/// The highest slot the primary with node id `id` serves now, from a fresh `CLUSTER SLOTS`;
/// `None` if it serves none (failed over, or every slot moved away). The highest: a resharding
/// moves a node's lowest slots first.
pub(crate) async fn slot_of(pool: &Pool, id: &str) -> Result<Option<u16>, BackendError> {
    let reply: Value = pool.query(redis::cmd("CLUSTER").arg("SLOTS")).await?;
    Ok(highest_slot_of(&slot_ranges(&reply)?, id))
}

fn highest_slot_of(ranges: &[Range], id: &str) -> Option<u16> {
    ranges
        .iter()
        .filter(|range| range.nodes.first().is_some_and(|(_, node)| node == id))
        .map(|range| range.end)
        .max()
}

/// Every node `CLUSTER SLOTS` names, primaries and replicas, each once.
async fn every_node(pool: &Pool) -> Result<Vec<Node>, BackendError> {
    let reply: Value = pool.query(redis::cmd("CLUSTER").arg("SLOTS")).await?;
    let mut nodes: Vec<Node> = slot_ranges(&reply)?
        .into_iter()
        .flat_map(|range| range.nodes.into_iter().map(|(node, _)| node))
        .collect();
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

/// A slot range of a `CLUSTER SLOTS` reply.
#[derive(Debug)]
struct Range {
    start: u16,
    end: u16,
    /// Primary first; each with its node id (empty if the reply names none).
    nodes: Vec<(Node, String)>,
}

/// The slot ranges of a `CLUSTER SLOTS` reply. A node without an address (a node that has not
/// learned its own IP yet answers an empty one) is left out.
fn slot_ranges(reply: &Value) -> Result<Vec<Range>, BackendError> {
    let malformed = |what: &str| {
        BackendError::Storage(format!("CLUSTER SLOTS answered {what}: {reply:?}").into())
    };
    let Value::Array(ranges) = reply else {
        return Err(malformed("no array"));
    };
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(malformed("a range that is not an array"));
        };
        // [start, end, primary, replica...]
        let slot = |index: usize| match fields.get(index) {
            Some(Value::Int(slot)) => u16::try_from(*slot).ok(),
            _ => None,
        };
        let (Some(start), Some(end)) = (slot(0), slot(1)) else {
            return Err(malformed("a range without its first and last slot"));
        };
        let mut nodes = Vec::new();
        for node in fields.iter().skip(2) {
            let Value::Array(parts) = node else {
                return Err(malformed("a node that is not an array"));
            };
            let host = match parts.first() {
                Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                Some(Value::SimpleString(text)) => text.clone(),
                _ => return Err(malformed("a node without a host")),
            };
            let port = match parts.get(1) {
                Some(Value::Int(port)) => u16::try_from(*port).ok(),
                _ => None,
            };
            let Some(port) = port else {
                return Err(malformed("a node without a port"));
            };
            let id = match parts.get(2) {
                Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                Some(Value::SimpleString(text)) => text.clone(),
                _ => String::new(),
            };
            if !host.is_empty() && host != "?" {
                nodes.push(((host, port), id));
            }
        }
        out.push(Range { start, end, nodes });
    }
    Ok(out)
}

/// A 128-bit fingerprint of a key, for counting each key of a walk once without holding the
/// keys: a key a resharding moves during the walk can be met on both nodes. Two fixed-seed
/// 64-bit hashes; a collision among the keys of one prefix is not a practical concern.
pub(crate) fn fingerprint(key: &[u8]) -> u128 {
    let high = foldhash::quality::FixedState::with_seed(0x5265_6469_7343_6c75).hash_one(key);
    let low = foldhash::quality::FixedState::with_seed(0x7374_6572_4b65_7973).hash_one(key);
    (u128::from(high) << 64) | u128::from(low)
}

/// The nodes the pub/sub connection may listen on, and how a client for one is made.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// The first seed's connection settings (user, password, protocol, TLS mode): every node
    /// of a cluster shares them.
    template: ConnectionInfo,
    #[cfg(feature = "redis-tls")]
    certificates: Option<redis::TlsCertificates>,
    state: Mutex<ListenerState>,
}

#[derive(Debug)]
struct ListenerState {
    /// Seeds first, then the nodes discovered, each once.
    nodes: Vec<Node>,
    /// The node the next connection tries.
    next: usize,
}

impl Listeners {
    pub(crate) fn new(
        template: ConnectionInfo,
        seeds: Vec<Node>,
        #[cfg(feature = "redis-tls")] certificates: Option<redis::TlsCertificates>,
    ) -> Self {
        Listeners {
            template,
            #[cfg(feature = "redis-tls")]
            certificates,
            state: Mutex::new(ListenerState {
                nodes: seeds,
                next: 0,
            }),
        }
    }

    /// A client for the next node to listen on; each call moves on to the node after it, so a
    /// failed node is followed by another one.
    pub(crate) fn next_client(&self) -> Result<(Node, redis::Client), redis::RedisError> {
        let node = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.nodes.is_empty() {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::ClusterConnectionNotFound,
                    "no cluster node known to listen on",
                )));
            }
            let index = state.next % state.nodes.len();
            state.next = index + 1;
            state.nodes[index].clone()
        };
        Ok((node.clone(), self.client(&node)?))
    }

    /// Adds the nodes the cluster names now to those known; none is forgotten (a node that is
    /// down now may be the one that comes back).
    pub(crate) async fn discover(&self, pool: &Pool) {
        match every_node(pool).await {
            Ok(found) => {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                for node in found {
                    if !state.nodes.contains(&node) {
                        state.nodes.push(node);
                    }
                }
            }
            Err(error) => {
                tracing::debug!(error = %error, "resulthub.redis.cluster_discovery_failed");
            }
        }
    }

    fn client(&self, (host, port): &Node) -> Result<redis::Client, redis::RedisError> {
        let addr = match self.template.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(host.clone(), *port),
        };
        let info = self.template.clone().set_addr(addr);
        #[cfg(feature = "redis-tls")]
        if let Some(certificates) = &self.certificates {
            return redis::Client::build_with_tls(info, certificates.clone());
        }
        redis::Client::open(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"0123abcd".to_vec()),
        ])
    }

    #[test]
    fn cluster_slots_gives_each_primary_once_and_every_node() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7004),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(5470),
                node("127.0.0.1", 7001),
                node("127.0.0.1", 7005),
            ]),
            // A second range of the same primary.
            Value::Array(vec![
                Value::Int(5471),
                Value::Int(16383),
                node("127.0.0.1", 7001),
                node("", 7003),
            ]),
        ]);
        let ranges = slot_ranges(&reply).expect("parses");
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[1].start, 5461);
        assert_eq!(ranges[1].end, 5470);
        assert_eq!(ranges[0].nodes[0].0, ("127.0.0.1".to_owned(), 7000));
        assert_eq!(ranges[0].nodes[0].1, "0123abcd");
        assert_eq!(ranges[0].nodes[1].0, ("127.0.0.1".to_owned(), 7004));
        // The node without an address is left out.
        assert_eq!(ranges[2].nodes.len(), 1);
    }

    #[test]
    fn a_node_is_repicked_by_its_highest_slot() {
        let range = |start: u16, end: u16, id: &str| Range {
            start,
            end,
            nodes: vec![(("h".to_owned(), 1), id.to_owned())],
        };
        let ranges = vec![range(0, 9, "a"), range(10, 19, "b"), range(20, 29, "a")];
        assert_eq!(highest_slot_of(&ranges, "a"), Some(29));
        assert_eq!(highest_slot_of(&ranges, "b"), Some(19));
        assert_eq!(highest_slot_of(&ranges, "gone"), None);
    }

    #[test]
    fn a_malformed_reply_is_a_storage_error() {
        for reply in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![Value::Nil, Value::Int(1)])]),
            Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(1),
                Value::Int(7),
            ])]),
            Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(1),
                Value::Array(vec![Value::BulkString(b"h".to_vec()), Value::Int(70_000)]),
            ])]),
        ] {
            assert!(
                matches!(slot_ranges(&reply), Err(BackendError::Storage(_))),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn fingerprints_differ_and_repeat() {
        let a = fingerprint(b"flowrra:task:a");
        assert_eq!(a, fingerprint(b"flowrra:task:a"));
        let all: std::collections::HashSet<u128> = (0..10_000)
            .map(|n| fingerprint(format!("flowrra:task:{n}").as_bytes()))
            .collect();
        assert_eq!(all.len(), 10_000);
    }

    #[test]
    fn listeners_move_on_to_the_next_node_at_each_connection() {
        let template = redis::IntoConnectionInfo::into_connection_info("redis://:pw@10.0.0.1:7000")
            .expect("a URL");
        let listeners = Listeners::new(
            template,
            vec![("10.0.0.1".to_owned(), 7000), ("10.0.0.2".to_owned(), 7001)],
            #[cfg(feature = "redis-tls")]
            None,
        );
        let (first, client) = listeners.next_client().expect("a client");
        assert_eq!(first, ("10.0.0.1".to_owned(), 7000));
        assert_eq!(
            client.get_connection_info().redis_settings().password(),
            Some("pw")
        );
        assert_eq!(listeners.next_client().expect("a client").0.1, 7001);
        assert_eq!(listeners.next_client().expect("a client").0.1, 7000);
    }
}
