//! The cluster operations of `sigil/1` (admin only): `cluster_status`,
//! `cluster_add`, `cluster_remove`. A change takes the next membership
//! epoch in the directory first (the fence: one change per epoch in the
//! whole cluster, and only once the last returned), then is proposed to
//! the session cluster, then recorded as returned. A change whose node
//! died before it returned is finished by the next change, whichever node
//! runs it (docs/sessions.md, "Membership").

use std::collections::BTreeMap;

use ciborium::Value;
use directory::{Directory, MembershipFence};
use sessions::net::{ClusterStatus, Replica, ReplicaError};
use sessions::{Membership, MembershipError, NodeName};

use super::{refuse, unavailable};
use sigil_proto::{ErrorCode, Operation, WireError};

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn int(n: u64) -> Value {
    Value::Integer(n.into())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// Answers a cluster operation.
///
/// # Errors
/// `unavailable` when the directory or a majority cannot be reached,
/// `conflict` when another change holds the epoch, `bad_request` for a
/// change that is not allowed (removing the node asked, an unknown node).
pub async fn answer(
    directory: &Directory,
    replica: &Replica,
    operation: &Operation,
) -> Result<Value, WireError> {
    match operation {
        Operation::ClusterStatus => {}
        Operation::ClusterAdd { node, address } => {
            change(directory, replica, |m| m.with_added(node, address)).await?;
        }
        Operation::ClusterRemove { node } => {
            change(directory, replica, |m| m.without(node)).await?;
        }
        other => {
            return Err(refuse(
                ErrorCode::BadRequest,
                format!("{} is not a cluster operation", other.name()),
            ))
        }
    }
    let status = replica.status().await.map_err(stopped)?;
    let fence = directory.membership_fence().await.ok().flatten();
    Ok(render(&status, fence.as_ref()))
}

fn stopped(e: ReplicaError) -> WireError {
    refuse(ErrorCode::Unavailable, e.to_string())
}

fn fence_of(membership: &Membership) -> MembershipFence {
    MembershipFence {
        epoch: membership.epoch,
        members: membership
            .members
            .iter()
            .map(|(name, address)| (name.to_string(), address.clone()))
            .collect(),
        committed: false,
    }
}

fn membership_of(fence: &MembershipFence) -> Membership {
    Membership {
        epoch: fence.epoch,
        members: fence
            .members
            .iter()
            .map(|(name, address)| (NodeName::from(name.as_str()), address.clone()))
            .collect(),
    }
}

fn refused(e: ReplicaError) -> WireError {
    match e {
        ReplicaError::Membership(
            e @ (MembershipError::AlreadyMember(_)
            | MembershipError::NotMember(_)
            | MembershipError::LastMember
            | MembershipError::RemovesItself
            | MembershipError::NotOneNode),
        ) => refuse(ErrorCode::BadRequest, e.to_string()),
        e @ ReplicaError::NoNetwork => refuse(ErrorCode::BadRequest, e.to_string()),
        ReplicaError::Membership(e @ MembershipError::InProgress) => {
            refuse(ErrorCode::Conflict, e.to_string())
        }
        other => refuse(ErrorCode::Unavailable, other.to_string()),
    }
}

/// Proposes `target` and records it as returned in the directory.
async fn settle(
    directory: &Directory,
    replica: &Replica,
    target: Membership,
) -> Result<(), WireError> {
    let epoch = target.epoch;
    replica.propose(target).await.map_err(refused)?;
    directory
        .commit_membership_epoch(epoch)
        .await
        .map_err(unavailable)
}

/// Finishes a change another node left unreturned, then makes this one.
async fn change(
    directory: &Directory,
    replica: &Replica,
    next_of: impl FnOnce(&Membership) -> Result<Membership, MembershipError>,
) -> Result<(), WireError> {
    // Before the fence: an epoch taken by a node that cannot change would
    // stay open until another node finished it.
    if !replica.has_network() {
        return Err(refused(ReplicaError::NoNetwork));
    }
    let status = replica.status().await.map_err(stopped)?;
    let mine = status.node.epoch;
    if let Some(fence) = directory.membership_fence().await.map_err(unavailable)? {
        if !fence.committed && (fence.epoch == mine || fence.epoch == mine + 1) {
            settle(directory, replica, membership_of(&fence)).await?;
        } else if fence.epoch > mine {
            return Err(refuse(
                ErrorCode::Unavailable,
                format!(
                    "this node is at membership epoch {mine}, the cluster at {}: ask another node, or wait until it caught up",
                    fence.epoch
                ),
            ));
        }
    }
    let status = replica.status().await.map_err(stopped)?;
    // A node that is not a member (removed, or not added yet) changes
    // nothing: it starts from no members.
    let current = if status.node.member {
        status.membership.clone()
    } else {
        Membership {
            epoch: status.membership.epoch,
            members: Default::default(),
        }
    };
    let next = next_of(&current).map_err(|e| refused(ReplicaError::Membership(e)))?;
    if !next.contains(&status.node.name) {
        return Err(refused(ReplicaError::Membership(
            MembershipError::RemovesItself,
        )));
    }
    if status.node.serving_until <= status.now {
        return Err(refused(ReplicaError::Membership(
            MembershipError::NotServing,
        )));
    }
    if !directory
        .take_membership_epoch(&fence_of(&next))
        .await
        .map_err(unavailable)?
    {
        return Err(refuse(
            ErrorCode::Conflict,
            format!(
                "another membership change took epoch {}: see `sigil cluster status` and retry",
                next.epoch
            ),
        ));
    }
    settle(directory, replica, next).await
}

fn render(status: &ClusterStatus, fence: Option<&MembershipFence>) -> Value {
    let node = &status.node;
    let now = status.now;
    let mut members: BTreeMap<String, Value> = BTreeMap::new();
    let held = node.peers.iter().filter(|p| p.lease_until > now).count();
    members.insert(
        node.name.to_string(),
        map(vec![
            ("address", text(node.address.clone())),
            ("self", Value::Bool(true)),
            ("ready", Value::Bool(node.ready)),
            ("serving", Value::Bool(node.serving_until > now)),
        ]),
    );
    for peer in &node.peers {
        let mut entries = vec![
            ("address", text(peer.address.clone())),
            ("self", Value::Bool(false)),
            ("ready", Value::Bool(peer.granting)),
            ("lease_held", Value::Bool(peer.lease_until > now)),
        ];
        if let Some(heard) = peer.last_heard {
            entries.push(("last_heard_ms_ago", int(now.saturating_sub(heard))));
        }
        members.insert(peer.name.to_string(), map(entries));
    }
    let lag = status.lag;
    let mean_ms = if lag.count == 0 {
        0.0
    } else {
        lag.sum_us as f64 / lag.count as f64 / 1000.0
    };
    let mut entries = vec![
        ("node", text(node.name.to_string())),
        ("epoch", int(node.epoch)),
        ("member", Value::Bool(node.member)),
        ("ready", Value::Bool(node.ready)),
        ("serving", Value::Bool(node.serving_until > now)),
        ("majority", int(node.majority as u64)),
        // Its own grant counts: a node serves while this is a majority.
        ("leases_held", int(held as u64 + u64::from(node.member))),
        (
            "members",
            Value::Map(members.into_iter().map(|(k, v)| (text(k), v)).collect()),
        ),
        (
            "replication",
            map(vec![
                ("lag_mean_ms", Value::Float(mean_ms)),
                ("lag_max_ms", Value::Float(lag.max_us as f64 / 1000.0)),
                ("frames_dropped", int(lag.dropped)),
            ]),
        ),
        ("decrees", int(node.decrees as u64)),
        ("settling", int(node.settling as u64)),
        ("in_flight", int(node.in_flight as u64)),
        ("session_log_bytes", int(status.log_bytes)),
    ];
    if let Some(fence) = fence {
        entries.push((
            "fence",
            map(vec![
                ("epoch", int(fence.epoch)),
                ("committed", Value::Bool(fence.committed)),
            ]),
        ));
    }
    map(entries)
}
