//! What nodes send each other, and what the state machine tells its
//! driver.

use serde::{Deserialize, Serialize};

use super::{Decree, DecreeId, Membership, NodeName, Watermark};
use crate::table::SessionRecord;

/// The messages between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// "Grant me a lease." `known` is the sender's watermark.
    Heartbeat {
        /// The sender's membership epoch.
        epoch: u64,
        /// Sender's clock when sent (echoed back).
        sent_at: u64,
        /// The sender's watermark.
        known: Watermark,
    },
    /// The answer to a heartbeat: a lease grant when `granted`, and always
    /// the decrees the requester lacks.
    HeartbeatAck {
        /// The granter's membership epoch.
        epoch: u64,
        /// The heartbeat's `sent_at`.
        echo: u64,
        /// Whether a lease is granted (both ready, members, same epoch).
        granted: bool,
        /// Decrees above the requester's watermark.
        decrees: Vec<Decree>,
        /// The granter's watermark: what the requester still lacks at or
        /// below it was compacted away.
        floors: Watermark,
    },
    /// A decree, from its origin or from a node whose lease holders must
    /// acknowledge it.
    Decree(Decree),
    /// The sender applied the decree; `settled` when it is settled there.
    DecreeAck {
        /// The decree.
        id: DecreeId,
        /// Whether it is settled at the sender.
        settled: bool,
    },
    /// Sessions created or touched (best effort; merged as a CRDT).
    Deltas(Vec<SessionRecord>),
    /// "Send me your state": from a member that is starting.
    SyncRequest,
    /// A state transfer's end: the sender's sessions came before it as
    /// [`Message::Deltas`].
    SyncResponse {
        /// Whether the sender served (held a majority of leases).
        serving: bool,
        /// Every decree the sender holds.
        decrees: Vec<Decree>,
        /// The sender's watermark.
        floors: Watermark,
    },
}

/// What happened, for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A decree started here is settled by a majority: the revoke (or
    /// membership change) may return.
    Done(DecreeId),
    /// The node has merged the state of a serving peer (or of a majority
    /// of starting members) and serves.
    Ready,
    /// Make this decree durable, in the order asked, then call
    /// [`Node::persisted`].
    Persist(Decree),
    /// Send this node's sessions to `to` as [`Message::Deltas`], then
    /// `response` (a [`Message::SyncResponse`]).
    SendState {
        /// The peer that asked.
        to: NodeName,
        /// What to send after the sessions.
        response: Message,
    },
    /// The membership changed (links to dial, addresses, whether this
    /// node is still a member).
    MembershipChanged(Membership),
}
