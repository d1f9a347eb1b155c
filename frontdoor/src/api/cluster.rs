//! The cluster operations of `sigil/1` (admin only): `cluster_status`,
//! `cluster_add`, `cluster_remove`. A change takes the next membership
//! epoch in the directory first (the fence: one change per epoch in the
//! whole cluster, and only once the last returned), then is proposed to
//! the session cluster, then recorded as returned. A change whose node
//! died before it returned is finished by the next change, whichever node
//! runs it (docs/sessions.md, "Membership").

use std::collections::BTreeMap;

use directory::{Directory, MembershipFence};
use sessions::net::{ClusterStatus, Replica, ReplicaError};
use sessions::{Membership, MembershipError, NodeName};

use super::{refuse, unavailable};
use sigil_proto::results::{ClusterView, FenceView, MemberView, ReplicationView};
use sigil_proto::{ErrorCode, WireError};

/// `cluster_status`: the session cluster as this node sees it.
///
/// # Errors
/// `unavailable` when the replica stopped.
pub async fn status(directory: &Directory, replica: &Replica) -> Result<ClusterView, WireError> {
    let status = replica.status().await.map_err(stopped)?;
    let fence = directory.membership_fence().await.ok().flatten();
    Ok(view(&status, fence.as_ref()))
}

/// `cluster_add`: adds `node` at `address`, then answers the status.
///
/// # Errors
/// `unavailable` when the directory or a majority cannot be reached,
/// `conflict` when another change holds the epoch, `bad_request` for a
/// change that is not allowed (a member already, no network).
pub async fn add(
    directory: &Directory,
    replica: &Replica,
    node: &str,
    address: &str,
) -> Result<ClusterView, WireError> {
    change(directory, replica, |m| m.with_added(node, address)).await?;
    status(directory, replica).await
}

/// `cluster_remove`: removes `node` for good, then answers the status.
///
/// # Errors
/// As [`add`]; `bad_request` for removing the node asked or a non-member.
pub async fn remove(
    directory: &Directory,
    replica: &Replica,
    node: &str,
) -> Result<ClusterView, WireError> {
    change(directory, replica, |m| m.without(node)).await?;
    status(directory, replica).await
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

fn view(status: &ClusterStatus, fence: Option<&MembershipFence>) -> ClusterView {
    let node = &status.node;
    let now = status.now;
    let mut members = BTreeMap::new();
    let held = node.peers.iter().filter(|p| p.lease_until > now).count();
    members.insert(
        node.name.to_string(),
        MemberView {
            address: node.address.clone(),
            is_self: true,
            ready: node.ready,
            serving: Some(node.serving_until > now),
            lease_held: None,
            last_heard_ms_ago: None,
        },
    );
    for peer in &node.peers {
        members.insert(
            peer.name.to_string(),
            MemberView {
                address: peer.address.clone(),
                is_self: false,
                ready: peer.granting,
                serving: None,
                lease_held: Some(peer.lease_until > now),
                last_heard_ms_ago: peer.last_heard.map(|heard| now.saturating_sub(heard)),
            },
        );
    }
    let lag = status.lag;
    let lag_mean_ms = if lag.count == 0 {
        0.0
    } else {
        lag.sum_us as f64 / lag.count as f64 / 1000.0
    };
    ClusterView {
        node: node.name.to_string(),
        epoch: node.epoch,
        member: node.member,
        ready: node.ready,
        serving: node.serving_until > now,
        majority: node.majority as u64,
        // Its own grant counts: a node serves while this is a majority.
        leases_held: held as u64 + u64::from(node.member),
        members,
        replication: ReplicationView {
            lag_mean_ms,
            lag_max_ms: lag.max_us as f64 / 1000.0,
            frames_dropped: lag.dropped,
            sessions_resent: lag.resent,
        },
        decrees: node.decrees as u64,
        settling: node.settling as u64,
        in_flight: node.in_flight as u64,
        session_log_bytes: status.log_bytes,
        fence: fence.map(|fence| FenceView {
            epoch: fence.epoch,
            committed: fence.committed,
        }),
    }
}
