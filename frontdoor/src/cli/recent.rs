//! The recently served tenants, kept in the data directory
//! (`{data_dir}/recent-tenants-{node}`) so that a restarted node loads them before
//! SPs ask: one `slug<TAB>last use` line per tenant (unix milliseconds),
//! most recent first. Written whole and atomically (temporary file, fsync,
//! rename, fsync of the directory), so a crash leaves the old list or the
//! new one, never half of one. Reading is lenient: a line that does not
//! parse is skipped, never fatal (the file only speeds a start up). And
//! loading them at start: the most recent before the node listens, the
//! rest in the background.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use directory::Directory;

use super::Layout;
use crate::api::Appliance;
use crate::config::Config;

/// How long a tenant counts as recently served.
pub const RECENT_FOR_MS: u64 = 7 * 24 * 3600 * 1000;

const HEADER: &str =
    "# sigil: tenants served recently, most recent first: slug<TAB>last use (unix ms)\n";

/// The file's text for `tenants` (slug, last use), kept in their order.
pub fn render(tenants: &[(String, u64)]) -> String {
    let mut text = String::with_capacity(HEADER.len() + tenants.len() * 24);
    text.push_str(HEADER);
    for (slug, used) in tenants {
        text.push_str(slug);
        text.push('\t');
        text.push_str(&used.to_string());
        text.push('\n');
    }
    text
}

fn valid_slug(slug: &str) -> bool {
    (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// The tenants in `text` last used within [`RECENT_FOR_MS`] of `now_ms`,
/// most recent first, at most `limit`, each once.
pub fn parse(text: &str, now_ms: u64, limit: usize) -> Vec<(String, u64)> {
    let mut seen = std::collections::HashSet::new();
    let mut tenants: Vec<(String, u64)> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (slug, used) = line.split_once('\t')?;
            let used: u64 = used.trim().parse().ok()?;
            valid_slug(slug).then(|| (slug.to_owned(), used))
        })
        .filter(|(_, used)| now_ms.saturating_sub(*used) < RECENT_FOR_MS)
        .filter(|(slug, _)| seen.insert(slug.clone()))
        .collect();
    tenants.sort_by_key(|(_, used)| std::cmp::Reverse(*used));
    tenants.truncate(limit);
    tenants
}

/// Reads the file; a missing file is `None`.
///
/// # Errors
/// When it exists but cannot be read.
pub fn read(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the file with `text`, atomically.
///
/// # Errors
/// When the directory cannot be written.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// On a first start (no recently-served file yet), the tenants loaded (keys
/// made if missing) before the node listens; the rest load on first use.
/// Generating RSA keys for thousands of seeded tenants at start would take
/// minutes.
const PRELOADED_TENANTS: usize = 20;

/// Directory changes, and the tenants served recently: the change
/// listener starts first (its first message, a reset, says it listens, so
/// what the preload reads cannot miss a change); then the most recent of
/// the tenants served before the last stop load before the node listens,
/// so a restarted node answers its usual SPs from memory. Returns the
/// changes and the tenants left to load in the background.
#[allow(clippy::type_complexity)]
pub(crate) fn preload_tenants(
    control: &tokio::runtime::Runtime,
    appliance: &Arc<Appliance>,
    directory: &Directory,
    layout: &Layout,
    config: &Config,
) -> anyhow::Result<(
    tokio::sync::mpsc::UnboundedReceiver<directory::changes::Change>,
    Vec<(String, u64)>,
)> {
    let mut changes = {
        let _entered = control.enter();
        directory::changes::listen(directory.config().clone())
    };
    let first = control.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .ok()
            .flatten()
    });
    if let Some(change) = first {
        control.block_on(appliance.apply_change(change));
    }
    let mut preload = control.block_on(tenants_to_preload(layout, directory, config))?;
    let later = preload.split_off(preload.len().min(config.tenants.preload_before_listening));
    let started = std::time::Instant::now();
    let cache = appliance.tenant_cache();
    let failed = control.block_on(cache.preload(preload, config.tenants.max_loading));
    if let Some((slug, e)) = failed.first() {
        anyhow::bail!("tenant {slug}: {}", e.message);
    }
    tracing::info!(tenants = cache.sizes().0, elapsed = ?started.elapsed(), "tenants preloaded");
    Ok((changes, later))
}

/// Loads `later` in the background, with half the load slots (SPs' own
/// loads keep the rest).
pub(crate) fn spawn_preload(
    control: &tokio::runtime::Runtime,
    appliance: &Arc<Appliance>,
    later: Vec<(String, u64)>,
    config: &Config,
) {
    if later.is_empty() {
        return;
    }
    let cache = Arc::clone(appliance.tenant_cache());
    let parallel = (config.tenants.max_loading / 2).max(1);
    control.spawn(async move {
        let started = std::time::Instant::now();
        for (slug, e) in cache.preload(later, parallel).await {
            tracing::warn!(tenant = %slug, error = %e.message, "preloading failed");
        }
        tracing::info!(tenants = cache.sizes().0, elapsed = ?started.elapsed(), "tenants preloaded in the background");
    });
}

/// The tenants to load at start, most recent first: the recently-served
/// file's, or on a first start (no file) the directory's first few.
async fn tenants_to_preload(
    layout: &Layout,
    directory: &Directory,
    config: &Config,
) -> anyhow::Result<Vec<(String, u64)>> {
    let path = layout.recent_tenants(&config.node);
    if let Some(text) = read(&path).with_context(|| path.display().to_string())? {
        return Ok(parse(
            &text,
            crate::api::wall_ms(),
            config.tenants.max_loaded,
        ));
    }
    let tenants = directory.tenants().await?;
    // Last used "long ago": loaded, but neither recent nor kept over
    // tenants SPs use.
    Ok(tenants
        .into_iter()
        .take(PRELOADED_TENANTS.min(config.tenants.max_loaded))
        .map(|tenant| (tenant.slug, 1))
        .collect())
}

/// Writes the recently-served file at `path` (unless `last` already says
/// the same).
pub(crate) fn write_recent(appliance: &Appliance, path: &Path, last: &mut String) {
    let text = render(&appliance.tenant_cache().recent());
    if text == *last {
        return;
    }
    match write(path, &text) {
        Ok(()) => *last = text,
        Err(e) => tracing::warn!(error = %e, "writing the recently-served tenants failed"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn round_trip_keeps_order_and_last_use() {
        let tenants = vec![
            ("acme".to_owned(), NOW - 5),
            ("globex".to_owned(), NOW - 50),
            ("seed-19000".to_owned(), NOW - RECENT_FOR_MS + 1),
        ];
        assert_eq!(parse(&render(&tenants), NOW, 100), tenants);
        assert_eq!(parse(&render(&tenants), NOW, 2), tenants[..2].to_vec());
        assert!(parse(&render(&[]), NOW, 100).is_empty());
    }

    #[test]
    fn old_garbled_and_repeated_lines_are_skipped() {
        let text = format!(
            "{HEADER}acme\t{}\nglobex\t{}\n\nACME\t{NOW}\n../etc\t{NOW}\nno-tab {NOW}\nbad-time\tyesterday\n\
             {}\t{NOW}\nacme\t{}\ninitech\t{}\n\u{fffd}\t{NOW}",
            NOW - 10,
            NOW - RECENT_FOR_MS,
            "x".repeat(64),
            NOW - 1,
            NOW - 20,
        );
        assert_eq!(
            parse(&text, NOW, 100),
            vec![
                ("acme".to_owned(), NOW - 10),
                ("initech".to_owned(), NOW - 20)
            ]
        );
        // A file of pure garbage is an empty list, not an error.
        assert!(parse("\u{0}\u{1}garbage\n\t\t\n", NOW, 100).is_empty());
    }

    #[test]
    fn writes_replace_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recent-tenants");
        assert_eq!(read(&path).unwrap(), None);
        write(&path, &render(&[("acme".into(), NOW)])).unwrap();
        write(&path, &render(&[("globex".into(), NOW)])).unwrap();
        let text = read(&path).unwrap().unwrap();
        assert_eq!(parse(&text, NOW, 10), vec![("globex".to_owned(), NOW)]);
        assert!(!path.with_extension("tmp").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "tenant names are the operator's business");
    }
}
