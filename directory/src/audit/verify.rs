//! Checking a tenant's chains in Postgres: every link, and every signed
//! head against the chain it names.

use std::collections::HashMap;

use super::{AuditEntry, HeadVerifier, SignedHead, GENESIS};
use crate::{Directory, Error};

/// Where a head being checked came from (for the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadSource {
    /// The `audit_heads` table.
    Postgres,
    /// A node's checkpoint on this machine (the path).
    Checkpoint(String),
    /// A file the operator kept (the path).
    File(String),
}

impl std::fmt::Display for HeadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadSource::Postgres => f.write_str("postgres"),
            HeadSource::Checkpoint(path) => write!(f, "checkpoint {path}"),
            HeadSource::File(path) => write!(f, "file {path}"),
        }
    }
}

/// What was found for one signed head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadVerdict {
    /// Its node.
    pub node: String,
    /// Its sequence number.
    pub seq: i64,
    /// Where it came from.
    pub source: HeadSource,
    /// What is wrong; `None`: the chain in Postgres extends it.
    pub problem: Option<String>,
}

/// The result of checking a tenant's chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Records checked.
    pub records: u64,
    /// Nodes whose chains were checked.
    pub nodes: Vec<String>,
    /// The first broken link: (node, seq, what is wrong).
    pub first_break: Option<(String, i64, String)>,
    /// Each signed head checked (empty for [`verify_chain`]).
    pub heads: Vec<HeadVerdict>,
}

impl ChainReport {
    /// Whether every link holds and every signed head is matched.
    pub fn whole(&self) -> bool {
        self.first_break.is_none() && self.heads.iter().all(|h| h.problem.is_none())
    }
}

/// The chains of one tenant as walked: the report, and each node's last
/// sequence number with the hashes at the sequence numbers asked for.
struct Walk {
    report: ChainReport,
    last: HashMap<String, i64>,
    found: HashMap<(String, i64), String>,
}

async fn walk(scope: &crate::TenantScope<'_>, wanted: &[(String, i64)]) -> Result<Walk, Error> {
    let rows = scope
        .client()
        .query(
            &format!(
                "SELECT {} FROM audit_events ORDER BY node, seq",
                AuditEntry::COLUMNS
            ),
            &[],
        )
        .await?;
    let mut walk = Walk {
        report: ChainReport {
            records: 0,
            nodes: Vec::new(),
            first_break: None,
            heads: Vec::new(),
        },
        last: HashMap::new(),
        found: HashMap::new(),
    };
    let mut previous: Option<(String, i64, String)> = None;
    for row in rows {
        let entry = AuditEntry::from_row(&row)?;
        walk.report.records += 1;
        let (expected_seq, expected_prev) = match &previous {
            Some((node, seq, hash)) if *node == entry.node => (seq + 1, hash.clone()),
            _ => {
                walk.report.nodes.push(entry.node.clone());
                (1, GENESIS.to_owned())
            }
        };
        let problem = if entry.seq != expected_seq {
            Some(format!("expected seq {expected_seq}: records missing"))
        } else if entry.prev_hash != expected_prev {
            Some("prev_hash does not match the previous record's hash".to_owned())
        } else if entry.hash != entry.expected_hash() {
            Some("hash does not match the record's contents".to_owned())
        } else {
            None
        };
        if let (Some(problem), None) = (problem, &walk.report.first_break) {
            walk.report.first_break = Some((entry.node.clone(), entry.seq, problem));
        }
        walk.last.insert(entry.node.clone(), entry.seq);
        let key = (entry.node.clone(), entry.seq);
        if wanted.contains(&key) {
            walk.found.insert(key, entry.hash.clone());
        }
        previous = Some((entry.node, entry.seq, entry.hash));
    }
    Ok(walk)
}

async fn heads_in(scope: &crate::TenantScope<'_>) -> Result<Vec<SignedHead>, Error> {
    let rows = scope
        .client()
        .query(
            "SELECT node, seq, hash, at_ms, signature, certificate FROM audit_heads ORDER BY node",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SignedHead {
                tenant_id: scope.tenant_id(),
                node: row.try_get(0)?,
                seq: row.try_get(1)?,
                hash: row.try_get(2)?,
                at_ms: u64::try_from(row.try_get::<_, i64>(3)?).unwrap_or(0),
                signature: row.try_get(4)?,
                certificate: row.try_get(5)?,
            })
        })
        .collect()
}

/// The signed heads of `tenant_id` stored in Postgres, one per node.
///
/// # Errors
/// [`Error::Postgres`].
pub async fn stored_heads(directory: &Directory, tenant_id: i64) -> Result<Vec<SignedHead>, Error> {
    let scope = directory.tenant(tenant_id).await?;
    heads_in(&scope).await
}

/// Checks every chain of `tenant_id` in Postgres link by link.
///
/// # Errors
/// [`Error::Postgres`].
pub async fn verify_chain(directory: &Directory, tenant_id: i64) -> Result<ChainReport, Error> {
    let scope = directory.tenant(tenant_id).await?;
    Ok(walk(&scope, &[]).await?.report)
}

/// Checks every chain of `tenant_id` link by link, and against every
/// signed head: those in Postgres (`audit_heads`) and `extra` (the nodes'
/// checkpoints, files an operator kept). A head fails when `verifier`
/// refuses it, when its chain in Postgres ends before it (records cut
/// off, or the whole chain gone) or differs at its position (a rewrite,
/// even with every later hash recomputed).
///
/// # Errors
/// [`Error::Postgres`].
pub async fn verify_against_heads(
    directory: &Directory,
    tenant_id: i64,
    extra: &[(HeadSource, SignedHead)],
    verifier: &dyn HeadVerifier,
) -> Result<ChainReport, Error> {
    let scope = directory.tenant(tenant_id).await?;
    let mut heads: Vec<(HeadSource, SignedHead)> = heads_in(&scope)
        .await?
        .into_iter()
        .map(|head| (HeadSource::Postgres, head))
        .collect();
    heads.extend(extra.iter().cloned());
    let wanted: Vec<(String, i64)> = heads.iter().map(|(_, h)| (h.node.clone(), h.seq)).collect();
    let walk = walk(&scope, &wanted).await?;
    drop(scope);
    let mut report = walk.report;
    for (source, head) in heads {
        let problem = if head.tenant_id != tenant_id {
            Some(format!(
                "a head of tenant {}, not {tenant_id}",
                head.tenant_id
            ))
        } else if let Err(why) = verifier.verify(&head) {
            Some(format!("not a genuine head: {why}"))
        } else {
            match walk.found.get(&(head.node.clone(), head.seq)) {
                Some(hash) if *hash == head.hash => None,
                Some(_) => Some(format!(
                    "record {} of {} differs from the signed head (rewritten)",
                    head.seq, head.node
                )),
                None => Some(match walk.last.get(&head.node) {
                    Some(last) => format!(
                        "the chain of {} ends at seq {last}, before the signed head's {} (records missing)",
                        head.node, head.seq
                    ),
                    None => format!(
                        "no record of {} in Postgres, but a signed head at seq {} (chain missing)",
                        head.node, head.seq
                    ),
                }),
            }
        };
        report.heads.push(HeadVerdict {
            node: head.node,
            seq: head.seq,
            source,
            problem,
        });
    }
    Ok(report)
}
