//! Operator commands that talk to the directory directly: `sigil admin
//! frontend add`, `sigil audit verify`, `sigil directory seed`.

use std::path::Path;

use anyhow::Context;
use directory::Frontend;

use super::serve::{open_directory, Layout};
use crate::config::Config;
use crate::pki::DeploymentCa;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Mints a caller certificate from the deployment CA, writes it (with the
/// CA certificate) to `out`, and registers it for `tenants`.
///
/// # Errors
/// When the CA is missing (run `sigil serve` once), the name exists, or
/// the directory is unreachable.
pub fn frontend_add(
    config: &Config,
    name: &str,
    tenants: &[String],
    admin: bool,
    out: &Path,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(!tenants.is_empty(), "--tenants: at least one tenant (or *)");
    let layout = Layout {
        root: config.data_dir.clone(),
    };
    anyhow::ensure!(
        layout.ca().join("ca.key").exists(),
        "no deployment CA in {}: run `sigil serve` once first",
        layout.ca().display()
    );
    let ca = DeploymentCa::create_or_load(&layout.ca())?;
    let credentials = ca.issue_client(name)?;
    let fingerprint = credentials.fingerprint();
    runtime()?.block_on(async {
        let (directory, cluster) = open_directory(config, 1).await?;
        // A cluster this command had to start is stopped again when it ends.
        let _cluster = super::serve::StartedCluster(cluster);
        for tenant in tenants.iter().filter(|t| *t != "*") {
            anyhow::ensure!(
                directory.tenant_by_slug(tenant).await?.is_some(),
                "no tenant {tenant}"
            );
        }
        directory
            .register_frontend(&Frontend {
                fingerprint: fingerprint.clone(),
                name: name.to_owned(),
                tenants: tenants.to_vec(),
                admin,
            })
            .await?;
        anyhow::Ok(())
    })?;
    credentials
        .write(out, Some(ca.certificate_pem()))
        .with_context(|| out.display().to_string())?;
    Ok(
        serde_json::json!({"name": name, "tenants": tenants, "admin": admin, "fingerprint": fingerprint, "dir": out.display().to_string()}),
    )
}

/// Checks the audit chains of `tenant` in Postgres (after shipping this
/// node's journal). Returns the report and whether the chain is whole.
///
/// # Errors
/// When the tenant is unknown or the directory unreachable.
pub fn audit_verify(config: &Config, tenant: &str) -> anyhow::Result<(serde_json::Value, bool)> {
    runtime()?.block_on(async {
        let (directory, cluster) = open_directory(config, 1).await?;
        // A cluster this command had to start is stopped again when it ends.
        let _cluster = super::serve::StartedCluster(cluster);
        let layout = Layout { root: config.data_dir.clone() };
        let journal = layout.journal(&config.node);
        if journal.exists() {
            directory::audit::ship(&directory, &journal, 5_000).await?;
        }
        let row = directory.tenant_by_slug(tenant).await?.with_context(|| format!("no tenant {tenant}"))?;
        let report = directory::audit::verify_chain(&directory, row.id).await?;
        let whole = report.first_break.is_none();
        let value = serde_json::json!({
            "tenant": tenant,
            "records": report.records,
            "nodes": report.nodes,
            "ok": whole,
            "first_broken_link": report.first_break.map(|(node, seq, why)| serde_json::json!({"node": node, "seq": seq, "problem": why})),
        });
        Ok((value, whole))
    })
}

/// Seeds synthetic tenants and users with a progress bar.
///
/// # Errors
/// When seeded tenants exist, or the directory fails.
pub fn directory_seed(
    config: &Config,
    tenants: u64,
    users: u64,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        tenants > 0 && users >= tenants,
        "--users must be at least --tenants, and both positive"
    );
    let started = std::time::Instant::now();
    runtime()?.block_on(async {
        let (directory, cluster) = open_directory(config, 1).await?;
        // A cluster this command had to start is stopped again when it ends.
        let _cluster = super::serve::StartedCluster(cluster);
        let bar = indicatif::ProgressBar::new(users);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} seeding [{bar:40}] {pos}/{len} users ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let progress = |done: u64, _total: u64| bar.set_position(done);
        directory::seed::run(
            &directory,
            directory::seed::SeedPlan::new(tenants, users),
            &progress,
        )
        .await?;
        bar.finish();
        anyhow::Ok(())
    })?;
    let sizes = directory::seed::SeedPlan::new(tenants, users).sizes();
    Ok(serde_json::json!({
        "tenants": tenants,
        "users": users,
        "largest_tenants": sizes.iter().take(5).collect::<Vec<_>>(),
        "median_tenant": sizes[sizes.len() / 2],
        "seconds": started.elapsed().as_secs_f64(),
    }))
}
