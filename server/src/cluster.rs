//! The cluster's layout from etcd's flags: `--initial-cluster name=peer-url,...`, `--name` and
//! `--initial-cluster-token` give every member its id (from its peer URL and the token, as etcd
//! derives ids, so every member computes the same ids without talking) and the cluster its id.
//!
//! Unlike etcd, the cluster id derives from the token alone, not from the initial members: a
//! member joining with `--initial-cluster-state existing` lists more members than the cluster
//! started with, and must still compute the same id without asking a peer first. (A member
//! added at run time gets its id from its peer URL and the token too, so the one it computes
//! at its start is the one MemberAdd gave it.)

use std::net::SocketAddr;

use engine::types::NodeId;
use host::incarnation::{base_seed, mix};

/// One initial member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMember {
    /// Its id.
    pub id: NodeId,
    /// Its `--name`.
    pub name: String,
    /// Its peer URL.
    pub peer_url: String,
    /// Where it listens for peers.
    pub peer_address: SocketAddr,
}

/// Every initial member and which one this process is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterLayout {
    /// The members, in `--initial-cluster` order.
    pub members: Vec<ClusterMember>,
    /// This member's id.
    pub self_id: NodeId,
    /// The cluster's id (echoed in response headers).
    pub cluster_id: u64,
}

/// The id of the member at `peer_url` in the cluster named by `token` (never 0).
pub fn member_id(peer_url: &str, token: &str) -> NodeId {
    let id = mix(base_seed(&format!("{peer_url}\n{token}")));
    NodeId(id.max(1))
}

/// The id of the cluster named by `token` (never 0).
pub fn cluster_id(token: &str) -> u64 {
    mix(base_seed(&format!("cluster\n{token}"))).max(1)
}

/// Parses `--initial-cluster` (or this member alone when it is absent) for member `name`.
pub fn layout(
    name: &str,
    initial_cluster: Option<&str>,
    own_peer_url: &str,
    token: &str,
) -> Result<ClusterLayout, String> {
    let text = match initial_cluster {
        Some(text) => text.to_string(),
        None => format!("{name}={own_peer_url}"),
    };
    let mut members: Vec<ClusterMember> = Vec::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (member_name, peer_url) = part
            .split_once('=')
            .ok_or_else(|| format!("--initial-cluster {part:?}: expected name=http://host:port"))?;
        if members.iter().any(|member| member.name == member_name) {
            return Err(format!(
                "--initial-cluster names {member_name:?} twice; each member needs its own name"
            ));
        }
        let peer_address = crate::parse_url("--initial-cluster", peer_url)?;
        members.push(ClusterMember {
            id: member_id(peer_url.trim_end_matches('/'), token),
            name: member_name.to_string(),
            peer_url: peer_url.to_string(),
            peer_address,
        });
    }
    let Some(own) = members.iter().find(|member| member.name == name) else {
        return Err(format!(
            "--name {name:?} is not in --initial-cluster {text:?}; add {name}=<its peer URL>"
        ));
    };
    let self_id = own.id;
    let cluster_id = cluster_id(token);
    Ok(ClusterLayout {
        members,
        self_id,
        cluster_id,
    })
}

#[cfg(test)]
mod tests {
    use super::layout;

    /// Goal: every member computes the same ids and cluster id from the same flags; bad flags
    /// are refused naming the flag. Method: lay out one cluster from each member's view.
    #[test]
    fn every_member_agrees_on_the_layout() {
        let cluster = "a=http://127.0.0.1:2380,b=http://127.0.0.1:2381,c=http://127.0.0.1:2382";
        let views: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|name| layout(name, Some(cluster), "unused", "token").unwrap())
            .collect();
        assert!(views
            .windows(2)
            .all(|pair| pair[0].members == pair[1].members));
        assert!(views
            .windows(2)
            .all(|pair| pair[0].cluster_id == pair[1].cluster_id));
        let ids: std::collections::BTreeSet<_> = views.iter().map(|view| view.self_id).collect();
        assert_eq!(ids.len(), 3, "distinct ids");
        let other_token = layout("a", Some(cluster), "unused", "other").unwrap();
        assert_ne!(other_token.cluster_id, views[0].cluster_id);
        let error = layout("d", Some(cluster), "unused", "token").unwrap_err();
        assert!(
            error.contains("--name \"d\" is not in --initial-cluster"),
            "{error}"
        );
        let error = layout(
            "a",
            Some("a=http://127.0.0.1:1,a=http://127.0.0.1:2"),
            "",
            "t",
        )
        .unwrap_err();
        assert!(error.contains("twice"), "{error}");
        let error = layout("a", Some("a"), "", "t").unwrap_err();
        assert!(error.contains("expected name="), "{error}");
    }
}
