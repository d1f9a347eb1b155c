//! Fixed schedules that the random ones might take long to find.

use std::sync::Arc;

use crate::replication::{
    Decree, Event, Membership, Message, Node, NodeConfig, NodeName, Revoked, Timing,
};
use crate::table::{SessionPolicy, SessionTable, Validation};

use super::SimRng;

const TIMING: Timing = Timing {
    heartbeat_ms: 50,
    lease_ms: 300,
    drift_ppm: 10_000,
};

/// Nodes on a lossless network with a switchable cut, a disk per node
/// (kept or not across a crash), ticked one millisecond at a time.
pub(crate) struct Trio {
    pub(crate) names: Vec<NodeName>,
    pub(crate) membership: Membership,
    nodes: Vec<Option<Node>>,
    pub(crate) tables: Vec<Arc<SessionTable>>,
    pub(crate) disks: Vec<Vec<Decree>>,
    configured: Vec<Membership>,
    durable: bool,
    incarnations: u64,
}

impl Trio {
    pub(crate) fn new(durable: bool) -> Trio {
        Trio::of(3, durable)
    }

    /// `n` nodes, all members.
    pub(crate) fn of(n: usize, durable: bool) -> Trio {
        let names: Vec<NodeName> = (0..n)
            .map(|i| NodeName::from(format!("n{i}").as_str()))
            .collect();
        let membership = Membership::initial(names.iter().map(|n| (n.clone(), format!("{n}:1"))));
        let mut trio = Trio {
            names: Vec::new(),
            membership,
            nodes: Vec::new(),
            tables: Vec::new(),
            disks: Vec::new(),
            configured: Vec::new(),
            durable,
            incarnations: 0,
        };
        for name in names {
            let membership = trio.membership.clone();
            trio.add_node(name, membership, 0);
        }
        trio
    }

    /// Starts a node named `name` that believes in `membership`.
    pub(crate) fn add_node(&mut self, name: NodeName, membership: Membership, now: u64) -> usize {
        self.names.push(name);
        self.nodes.push(None);
        self.tables.push(Arc::new(SessionTable::new(1)));
        self.disks.push(Vec::new());
        self.configured.push(membership);
        let i = self.names.len() - 1;
        self.boot(i, now);
        i
    }

    #[cfg(test)]
    pub(crate) fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("the node is up")
    }

    #[cfg(test)]
    pub(crate) fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    #[cfg(test)]
    pub(crate) fn serving(&self, i: usize, now: u64) -> bool {
        self.nodes[i].as_ref().is_some_and(|n| n.can_serve(now))
    }

    pub(crate) fn boot(&mut self, i: usize, now: u64) {
        self.incarnations += 1;
        let table = Arc::new(SessionTable::new(1));
        let recovered = if self.durable {
            self.disks[i].clone()
        } else {
            Vec::new()
        };
        self.tables[i] = Arc::clone(&table);
        self.nodes[i] = Some(Node::new(
            NodeConfig {
                name: self.names[i].clone(),
                membership: self.configured[i].clone(),
                incarnation: 1_000 + self.incarnations,
                timing: TIMING,
            },
            table,
            recovered,
            now,
        ));
    }

    /// One millisecond: timers, events (disks sync at once), delivery of
    /// what `open(from, to)` lets through.
    pub(crate) fn tick(
        &mut self,
        now: u64,
        open: impl Fn(usize, usize) -> bool,
    ) -> Vec<(usize, Event)> {
        let mut outgoing = Vec::new();
        let mut done = Vec::new();
        for i in 0..self.nodes.len() {
            let Some(node) = self.nodes[i].as_mut() else {
                continue;
            };
            if now >= node.poll_timeout() {
                node.handle_timeout(now);
            }
            while let Some(event) = node.poll_event() {
                match event {
                    Event::Persist(decree) => {
                        self.disks[i].push(decree.clone());
                        node.persisted(decree.id, now);
                    }
                    Event::SendState { to, response } => {
                        let records = self.tables[i].snapshot().0;
                        outgoing.push((i, to.clone(), Message::Deltas(records)));
                        outgoing.push((i, to, response));
                    }
                    other => done.push((i, other)),
                }
            }
            while let Some((to, message)) = node.poll_transmit() {
                outgoing.push((i, to, message));
            }
        }
        for (from, to, message) in outgoing {
            let Some(j) = self.names.iter().position(|n| *n == to) else {
                continue;
            };
            if !open(from, j) {
                continue;
            }
            let name = self.names[from].clone();
            if let Some(node) = self.nodes[j].as_mut() {
                node.handle(now, &name, message);
            }
        }
        done
    }
}

/// The schedule of docs/sessions.md ("The case memory alone cannot
/// cover"): a session is replicated to all three nodes; node 2 is cut off;
/// node 0 revokes it, and the revoke returns once nodes 0 and 1 settled
/// it; nodes 0 and 1 then crash together and restart, and node 2 comes
/// back. Returns whether any serving node accepted the revoked session
/// afterwards: without durable decrees it does (the revocation existed
/// only in the memory of the two nodes that crashed).
pub fn memory_alone_case(durable: bool) -> bool {
    let mut trio = Trio::new(durable);
    let mut rng = SimRng::new(7);
    let tenant: Arc<str> = Arc::from("acme");
    let policy = SessionPolicy {
        absolute_ms: 10_000_000,
        idle_ms: 10_000_000,
    };
    let (revoke_at, crash_at, restart_at) = (1_000u64, 1_600u64, 1_700u64);
    let cut =
        |a: usize, b: usize, now: u64| (revoke_at..restart_at).contains(&now) && (a == 2 || b == 2);
    let mut session = None;
    let mut returned_at = None;
    let mut accepted = false;
    for now in 0..4_000u64 {
        if now == 500 {
            let record = trio.tables[0].create_with_id(
                rng.session_id(),
                &tenant,
                "alice",
                vec![],
                None,
                policy,
                now,
            );
            if let Some(node) = trio.nodes[0].as_mut() {
                node.replicate(record.clone());
                node.flush_deltas();
            }
            session = Some(record.id);
        }
        if let (true, Some(id), Some(node)) = (now == revoke_at, session, trio.nodes[0].as_mut()) {
            let decree = node.prepare_revoke(Revoked::Session {
                tenant: Arc::clone(&tenant),
                id,
                keep_until_ms: u64::MAX,
            });
            trio.disks[0].push(decree.clone());
            node.start(decree, now);
        }
        if now == crash_at {
            trio.nodes[0] = None;
            trio.nodes[1] = None;
        }
        if now == restart_at {
            trio.boot(0, now);
            trio.boot(1, now);
        }
        for event in trio.tick(now, |a, b| !cut(a, b, now)) {
            if let (_, Event::Done(_)) = event {
                returned_at.get_or_insert(now);
            }
        }
        if let (Some(id), Some(at)) = (session, returned_at) {
            for i in 0..3 {
                let serving = trio.nodes[i].as_ref().is_some_and(|n| n.can_serve(now));
                if now > at
                    && serving
                    && matches!(
                        trio.tables[i].validate("acme", &id, now),
                        Validation::Valid(_)
                    )
                {
                    accepted = true;
                }
            }
        }
    }
    assert!(
        returned_at.is_some_and(|t| t < crash_at),
        "the revoke returned before the crash: {returned_at:?}"
    );
    accepted
}
