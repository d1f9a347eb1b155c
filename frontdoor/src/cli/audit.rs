//! The audit log on a node and for its operator: shipping the journal to
//! Postgres and signing the chain heads (a task of `sigil serve`), and the
//! commands `sigil audit status`, `sigil audit head`, `sigil audit verify`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use directory::audit::{
    read_journal_bounded, Checkpoint, HeadSigner, HeadSource, Shipper, SignedHead,
};
use directory::Directory;
use tokio::sync::Mutex;

use super::postgres::{open_directory, StartedCluster};
use super::Layout;
use crate::api::wall_ms;
use crate::audit_heads::DeploymentHeadVerifier;
use crate::config::Config;
use sigil_proto::credentials::load_ca_certificate;

/// Records per shipping transaction.
const SHIP_BATCH: usize = 5_000;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The node's journal shipping: one shipper, shared by the task that runs
/// every second and the final round at shutdown.
pub(crate) struct Shipping {
    shipper: Mutex<Shipper>,
    directory: Arc<Directory>,
    signer: Arc<dyn HeadSigner>,
    node: String,
    /// Where dropped segments go (`None`: removed).
    archive: Option<PathBuf>,
}

impl Shipping {
    pub(crate) fn new(
        shipper: Shipper,
        directory: Arc<Directory>,
        signer: Arc<dyn HeadSigner>,
        node: &str,
        archive: Option<PathBuf>,
    ) -> Arc<Shipping> {
        Arc::new(Shipping {
            shipper: Mutex::new(shipper),
            directory,
            signer,
            node: node.to_owned(),
            archive,
        })
    }

    /// Ships what is durable; signs the heads that moved when `sign`;
    /// stores the signed heads Postgres lacks; drops (or archives) the
    /// sealed segments all that covers. Failures are retried by the next
    /// round (the directory reconnects on its own, with a backoff).
    async fn round(&self, sign: bool) -> Result<(), directory::Error> {
        let mut shipper = self.shipper.lock().await;
        shipper.ship(&self.directory, SHIP_BATCH).await?;
        if sign {
            shipper.sign_heads(self.signer.as_ref(), &self.node, wall_ms())?;
        }
        shipper.publish_heads(&self.directory).await?;
        shipper.drop_shipped_segments(self.archive.as_deref())?;
        Ok(())
    }

    /// Runs rounds every second, signing heads at most every
    /// `head_interval`, for as long as the runtime lives.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Runtime,
        head_interval: Duration,
    ) {
        let this = Arc::clone(self);
        runtime.spawn(async move {
            let mut last_signing: Option<Instant> = None;
            let mut failing = false;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let sign = last_signing.is_none_or(|at| at.elapsed() >= head_interval);
                match this.round(sign).await {
                    Ok(()) => {
                        if failing {
                            tracing::warn!("audit shipping resumed");
                        }
                        failing = false;
                        if sign {
                            last_signing = Some(Instant::now());
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "audit shipping failed; retrying every second");
                        }
                        failing = true;
                    }
                }
            }
        });
    }

    /// The last round, at shutdown: ships everything and signs the heads.
    pub(crate) async fn finish(&self) -> Result<(), directory::Error> {
        self.round(true).await
    }
}

/// Every node journal in the data directory: (node, path).
fn journals(layout: &Layout) -> Vec<(String, PathBuf)> {
    let dir = layout.root.join("audit");
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.strip_suffix(".journal")?.to_owned();
                    Some((name, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// What a journal has that Postgres does not, from its checkpoint: the
/// records past it and the oldest one's time. A running node may ship and
/// drop segments while this reads: it reads again from the newer
/// checkpoint then.
fn unshipped(path: &Path) -> anyhow::Result<(u64, Option<i64>, Checkpoint)> {
    let mut tries = 0;
    loop {
        let checkpoint = Checkpoint::load(path).unwrap_or_default();
        match unshipped_after(path, &checkpoint) {
            Ok((count, oldest)) => return Ok((count, oldest, checkpoint)),
            Err(e) if tries < 3 && Checkpoint::load(path).unwrap_or_default() != checkpoint => {
                tracing::debug!(error = %e, "the journal moved on while read; reading again");
                tries += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn unshipped_after(
    path: &Path,
    checkpoint: &Checkpoint,
) -> Result<(u64, Option<i64>), directory::Error> {
    let (mut count, mut oldest, mut offset) = (0u64, None, checkpoint.offset);
    loop {
        let (entries, end) = read_journal_bounded(path, offset, 50_000, u64::MAX)?;
        if oldest.is_none() {
            oldest = entries.first().map(|e| e.at_ms);
        }
        count += entries.len() as u64;
        if entries.len() < 50_000 {
            break;
        }
        offset = end;
    }
    Ok((count, oldest))
}

/// `sigil audit status`: per node journal in the data directory, what is
/// not yet in Postgres and how old it is, and the signed heads kept.
///
/// # Errors
/// When a journal cannot be read.
pub fn status(config: &Config) -> anyhow::Result<serde_json::Value> {
    let layout = Layout {
        root: config.data_dir.clone(),
    };
    let now = i64::try_from(wall_ms()).unwrap_or(i64::MAX);
    let (mut total, mut worst) = (0u64, 0f64);
    let mut nodes = Vec::new();
    for (node, path) in journals(&layout) {
        let (count, oldest, checkpoint) = unshipped(&path)?;
        let lag = oldest.map_or(0.0, |at| now.saturating_sub(at).max(0) as f64 / 1000.0);
        total += count;
        worst = worst.max(lag);
        let newest_head = checkpoint.signed.values().map(|h| h.at_ms).max();
        let segments = directory::audit::segment_summary(&path)?;
        nodes.push(serde_json::json!({
            "node": node,
            "journal": path.display().to_string(),
            "shipped_records": checkpoint.records,
            "unshipped_records": count,
            "ship_lag_seconds": lag,
            "signed_heads": checkpoint.signed.len(),
            "newest_head_at_ms": newest_head,
            "sealed_segments": segments.sealed,
            "sealed_segment_bytes": segments.sealed_bytes,
            "dropped_bytes": segments.first_offset,
        }));
    }
    Ok(serde_json::json!({
        "unshipped_records": total,
        "ship_lag_seconds": worst,
        "nodes": nodes,
    }))
}

/// The tenant `slug`'s id, through the run-time directory.
async fn tenant_id(directory: &Directory, slug: &str) -> anyhow::Result<i64> {
    Ok(directory
        .tenant_by_slug(slug)
        .await?
        .with_context(|| format!("no tenant {slug}"))?
        .id)
}

/// `sigil audit head --tenant T`: the newest signed head of `T` by this
/// node (`--node`), from its checkpoint or else from Postgres, as JSON to
/// keep somewhere else.
///
/// # Errors
/// When the tenant is unknown, or the node signed no head for it yet.
pub fn head(config: &Config, tenant: &str) -> anyhow::Result<serde_json::Value> {
    let layout = Layout {
        root: config.data_dir.clone(),
    };
    runtime()?.block_on(async {
        // A cluster this command had to start is stopped again when it
        // ends, after the connections to it (declared first, dropped last).
        let (_cluster, directory) = open_directory(config, 1)
            .await
            .map(|(d, c)| (StartedCluster(c), d))?;
        let id = tenant_id(&directory, tenant).await?;
        let local = Checkpoint::load(&layout.journal(&config.node))
            .and_then(|c| c.signed.get(&id).cloned());
        let head = match local {
            Some(head) => head,
            None => directory::audit::stored_heads(&directory, id)
                .await?
                .into_iter()
                .find(|h| h.node == config.node)
                .with_context(|| {
                    format!(
                        "node {} has signed no head for {tenant} yet (heads are signed every {} s once records are shipped)",
                        config.node, config.audit.head_interval_secs
                    )
                })?,
        };
        let mut value = serde_json::to_value(&head)?;
        value["tenant"] = serde_json::Value::from(tenant);
        Ok(value)
    })
}

/// Reads heads an operator kept: one head (as `sigil audit head` prints
/// it) or an array of them.
fn heads_in_file(path: &Path) -> anyhow::Result<Vec<SignedHead>> {
    let text = std::fs::read(path).with_context(|| path.display().to_string())?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| path.display().to_string())?;
    let heads = match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<Vec<SignedHead>, _>>(),
        one => serde_json::from_value(one).map(|h| vec![h]),
    };
    heads.with_context(|| format!("{}: not a signed head", path.display()))
}

/// `sigil audit verify --tenant T [--head FILE]`: checks the tenant's
/// chains in Postgres link by link and against every signed head (in
/// Postgres, in the checkpoints of this data directory, in `head_file`).
/// It ships nothing: records not yet in Postgres are reported as such.
/// Returns the report and whether everything holds.
///
/// # Errors
/// When the tenant is unknown, the directory unreachable, or a file
/// unreadable.
pub fn verify(
    config: &Config,
    tenant: &str,
    head_file: Option<&Path>,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let layout = Layout {
        root: config.data_dir.clone(),
    };
    let ca = load_ca_certificate(&layout.ca().join("ca.pem"))?;
    let verifier = DeploymentHeadVerifier::new(&ca)?;
    let mut extra: Vec<(HeadSource, SignedHead)> = Vec::new();
    let journals = journals(&layout);
    let mut unshipped_records = 0;
    for (_, path) in &journals {
        let (count, _, checkpoint) = unshipped(path)?;
        unshipped_records += count;
        extra.extend(
            checkpoint
                .signed
                .into_values()
                .map(|h| (HeadSource::Checkpoint(path.display().to_string()), h)),
        );
    }
    if let Some(file) = head_file {
        for head in heads_in_file(file)? {
            extra.push((HeadSource::File(file.display().to_string()), head));
        }
    }
    runtime()?.block_on(async {
        // A cluster this command had to start is stopped again when it
        // ends, after the connections to it (declared first, dropped last).
        let (_cluster, directory) = open_directory(config, 1)
            .await
            .map(|(d, c)| (StartedCluster(c), d))?;
        let id = tenant_id(&directory, tenant).await?;
        let mut from_files: Vec<(HeadSource, SignedHead)> = Vec::new();
        for (source, head) in extra {
            let file = matches!(source, HeadSource::File(_));
            // A checkpoint holds every tenant's heads; a file must be this tenant's.
            if head.tenant_id == id || file {
                from_files.push((source, head));
            }
        }
        let report =
            directory::audit::verify_against_heads(&directory, id, &from_files, &verifier).await?;
        let whole = report.whole();
        let heads: Vec<serde_json::Value> = report
            .heads
            .iter()
            .map(|h| {
                serde_json::json!({
                    "node": h.node,
                    "seq": h.seq,
                    "source": h.source.to_string(),
                    "ok": h.problem.is_none(),
                    "problem": h.problem,
                })
            })
            .collect();
        let value = serde_json::json!({
            "tenant": tenant,
            "records": report.records,
            "nodes": report.nodes,
            "ok": whole,
            "first_broken_link": report.first_break.map(|(node, seq, why)| serde_json::json!({"node": node, "seq": seq, "problem": why})),
            "heads": heads,
            "unshipped_records": unshipped_records,
        });
        Ok((value, whole))
    })
}
