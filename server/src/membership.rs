//! The membership as this member's host sees it: who is a voter or a learner (the engine's
//! applied configuration) and each member's name and URLs.
//!
//! The members of `--initial-cluster` are known from the flags. A member added at run time is
//! known from the log: MemberAdd and MemberUpdate propose their change with the member's
//! attributes as the change's context (etcd's member attributes: name, peer URLs, client
//! URLs, as JSON with etcd's field names), which the engine replicates, keeps in snapshots and
//! hands back (`Member::member_contexts`). After every step the member task compares the
//! applied membership with the last it saw and refreshes this view, which the peer transport
//! reads to dial peers learnt at run time and MemberList reads to answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use engine::kv::Request;
use engine::raft::{ConfChange, ConfState};
use engine::types::NodeId;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::ClusterLayout;
use crate::peer::PeerTable;
use crate::task::Command;

/// How often a member added at run time checks whether its attributes in the log are current.
const PUBLISH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// How long one publication may wait for the cluster to apply it before it is retried.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A member's attributes as carried in a membership change's context.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attributes {
    /// Its `--name` (empty until the member started and published it, as in etcd).
    #[serde(default)]
    pub name: String,
    /// Where its peers reach it.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// Where clients reach it (empty until it started).
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

impl Attributes {
    /// The context bytes for a membership change.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("attributes always serialize")
    }

    /// Reads a context; `None` if it is not attributes this host wrote.
    pub fn decode(bytes: &[u8]) -> Option<Attributes> {
        serde_json::from_slice(bytes).ok()
    }
}

/// One member as MemberList shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownMember {
    /// Its id.
    pub id: NodeId,
    /// Its name, URLs.
    pub attributes: Attributes,
    /// Whether it is a learner.
    pub is_learner: bool,
}

/// The membership view, shared by the member task (which refreshes it), the peer transport
/// and the gRPC services.
#[derive(Debug)]
pub struct View {
    self_id: NodeId,
    /// `--initial-cluster`'s members, in its order: their names and peer URLs.
    initial: Vec<(NodeId, Attributes, SocketAddr)>,
    /// The applied membership; until the member first reports one, `--initial-cluster` as
    /// voters.
    conf: ConfState,
    contexts: BTreeMap<NodeId, Vec<u8>>,
    /// Peer addresses for the transport: every member but this one.
    peers: PeerTable,
}

/// The view behind a lock (held only to copy or replace a few small values).
pub type SharedView = Arc<Mutex<View>>;

impl View {
    /// The view before the member has applied anything: `--initial-cluster` as voters.
    pub fn new(layout: &ClusterLayout, peers: PeerTable) -> View {
        let initial: Vec<_> = layout
            .members
            .iter()
            .map(|member| {
                let attributes = Attributes {
                    name: member.name.clone(),
                    peer_urls: vec![member.peer_url.clone()],
                    client_urls: Vec::new(),
                };
                (member.id, attributes, member.peer_address)
            })
            .collect();
        let mut voters: Vec<NodeId> = initial.iter().map(|(id, ..)| *id).collect();
        voters.sort();
        let mut view = View {
            self_id: layout.self_id,
            initial,
            conf: ConfState {
                voters,
                learners: Vec::new(),
            },
            contexts: BTreeMap::new(),
            peers,
        };
        view.publish_peers();
        view
    }

    /// Takes the engine's applied membership; returns whether anything changed.
    pub fn refresh(&mut self, conf: &ConfState, contexts: &BTreeMap<NodeId, Vec<u8>>) -> bool {
        if self.conf == *conf && self.contexts == *contexts {
            return false;
        }
        self.conf = conf.clone();
        self.contexts = contexts.clone();
        self.publish_peers();
        true
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.conf.voters.contains(&id) || self.conf.learners.contains(&id)
    }

    /// The attributes of member `id` as the log (or else `--initial-cluster`) gives them.
    pub fn attributes(&self, id: NodeId) -> Attributes {
        if let Some(attributes) = self
            .contexts
            .get(&id)
            .and_then(|bytes| Attributes::decode(bytes))
        {
            return attributes;
        }
        self.initial
            .iter()
            .find(|(initial_id, ..)| *initial_id == id)
            .map(|(_, attributes, _)| attributes.clone())
            .unwrap_or_default()
    }

    /// Whether the log carries attributes for this member (it was added at run time).
    pub fn has_context(&self, id: NodeId) -> bool {
        self.contexts.contains_key(&id)
    }

    /// Every member: `--initial-cluster`'s in its order, then those added at run time by id.
    pub fn members(&self) -> Vec<KnownMember> {
        let initial_ids = self.initial.iter().map(|(id, ..)| *id);
        let mut added: Vec<NodeId> = self
            .conf
            .voters
            .iter()
            .chain(&self.conf.learners)
            .copied()
            .filter(|id| !self.initial.iter().any(|(initial, ..)| initial == id))
            .collect();
        added.sort();
        initial_ids
            .chain(added)
            .filter(|id| self.contains(*id))
            .map(|id| KnownMember {
                id,
                attributes: self.attributes(id),
                is_learner: self.conf.learners.contains(&id),
            })
            .collect()
    }

    /// Writes the peer table: every member but this one whose peer URL resolves.
    fn publish_peers(&mut self) {
        let mut table = BTreeMap::new();
        for member in self.members() {
            if member.id == self.self_id {
                continue;
            }
            let address = match self.contexts.get(&member.id) {
                Some(_) => member
                    .attributes
                    .peer_urls
                    .first()
                    .and_then(|url| crate::parse_url("peer URL", url).ok()),
                None => self
                    .initial
                    .iter()
                    .find(|(id, ..)| *id == member.id)
                    .map(|(_, _, address)| *address),
            };
            if let Some(address) = address {
                table.insert(member.id, address);
            }
        }
        *self.peers.lock().expect("the peer table is never poisoned") = table;
    }
}

/// Publishes this member's name and client URLs through the log when the log's differ, which
/// is the case for a member added at run time: MemberAdd knows only its peer URLs. The peer
/// URLs stay as the log has them (MemberUpdate changes those, as in etcd). Runs until the
/// member task stops; retries until the cluster applied them.
pub async fn publish(
    self_id: NodeId,
    own: Attributes,
    view: SharedView,
    commands: mpsc::Sender<Command>,
) {
    loop {
        tokio::time::sleep(PUBLISH_INTERVAL).await;
        let published = {
            let view = view.lock().expect("the membership view is never poisoned");
            view.has_context(self_id).then(|| view.attributes(self_id))
        };
        let Some(published) = published.filter(|published| {
            published.name != own.name || published.client_urls != own.client_urls
        }) else {
            if commands.is_closed() {
                return;
            }
            continue;
        };
        let attributes = Attributes {
            peer_urls: published.peer_urls,
            ..own.clone()
        };
        let (reply, answer) = oneshot::channel();
        let request = Request::MemberChangeWithContext {
            change: ConfChange::Update(self_id),
            context: attributes.encode(),
        };
        if commands
            .send(Command::Request {
                request,
                // The member's own bookkeeping, as etcd's internal requests, is not a client's:
                // the host vouches for it as root, who always exists while auth is enabled.
                credentials: Some(engine::auth::Credentials::User(
                    engine::auth::ROOT_USER.to_string(),
                )),
                reply,
            })
            .await
            .is_err()
        {
            return;
        }
        match tokio::time::timeout(PUBLISH_TIMEOUT, answer).await {
            Ok(Ok(Ok(_))) => tracing::info!(name = %own.name, "published this member's attributes"),
            Ok(Ok(Err(error))) => {
                tracing::info!(
                    ?error,
                    "publishing this member's attributes failed; retrying"
                );
            }
            Ok(Err(_)) | Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a member added at run time appears (as a learner, with its peer URL in the peer
    /// table), turns voter on promotion, and disappears on removal; attributes round-trip
    /// with etcd's JSON names. Method: refresh a 2-member view with each configuration.
    #[test]
    fn members_added_at_run_time_reach_the_peer_table() {
        let layout = crate::cluster::layout(
            "a",
            Some("a=http://127.0.0.1:2380,b=http://127.0.0.1:2381"),
            "",
            "t",
        )
        .unwrap();
        let (a, b) = (layout.members[0].id, layout.members[1].id);
        let table = PeerTable::default();
        let mut view = View::new(&layout, table.clone());
        assert_eq!(table.lock().unwrap().keys().collect::<Vec<_>>(), vec![&b]);
        let added = NodeId(99);
        let attributes = Attributes {
            name: String::new(),
            peer_urls: vec!["http://127.0.0.1:2399".into()],
            client_urls: vec![],
        };
        let context = attributes.encode();
        assert!(String::from_utf8_lossy(&context).contains("\"peerURLs\""));
        assert_eq!(Attributes::decode(&context), Some(attributes.clone()));
        let mut voters = vec![a, b];
        voters.sort();
        let conf = ConfState {
            voters: voters.clone(),
            learners: vec![added],
        };
        let contexts = BTreeMap::from([(added, context)]);
        assert!(view.refresh(&conf, &contexts));
        assert!(!view.refresh(&conf, &contexts), "nothing new");
        let members = view.members();
        assert_eq!(members.len(), 3);
        assert_eq!(members[2].id, added);
        assert!(members[2].is_learner);
        assert_eq!(members[0].attributes.name, "a");
        assert_eq!(
            table.lock().unwrap().get(&added),
            Some(&"127.0.0.1:2399".parse().unwrap())
        );
        let removed = ConfState {
            voters,
            learners: vec![],
        };
        assert!(view.refresh(&removed, &BTreeMap::new()));
        assert!(!view.contains(added));
        assert!(!table.lock().unwrap().contains_key(&added));
    }
}
