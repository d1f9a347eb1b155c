//! Operator commands that talk to the directory directly, as the owner of
//! its tables: `sigil admin bootstrap`, `sigil admin frontend add`,
//! `sigil directory seed`.

use std::path::Path;

use anyhow::Context;
use directory::Frontend;

use super::postgres::{open_owner, StartedCluster};
use super::Layout;
use crate::config::Config;
use crate::pki::DeploymentCa;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// What a new caller may do beyond acting for its tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Powers {
    /// Admin operations (`--admin`).
    pub admin: bool,
    /// `session_create`: asserting sign-ins (`--trusted-assertions`).
    pub trusted_assertions: bool,
}

/// Mints a caller certificate from the deployment CA, writes it (with the
/// CA certificate) to `out`, and registers it for `tenants` with `powers`.
///
/// # Errors
/// When the CA is missing (run `sigil serve` once), the name exists, or
/// the directory is unreachable.
pub fn frontend_add(
    config: &Config,
    name: &str,
    tenants: &[String],
    powers: Powers,
    out: &Path,
) -> anyhow::Result<serde_json::Value> {
    let Powers {
        admin,
        trusted_assertions,
    } = powers;
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
        // A cluster this command had to start is stopped again when it
        // ends, after the connections to it (declared first, dropped last).
        let (_cluster, owner) = open_owner(config)
            .await
            .map(|(o, c)| (StartedCluster(c), o))?;
        for tenant in tenants.iter().filter(|t| *t != "*") {
            anyhow::ensure!(
                owner.tenant_by_slug(tenant).await?.is_some(),
                "no tenant {tenant}"
            );
        }
        owner
            .register_frontend(&Frontend {
                fingerprint: fingerprint.clone(),
                name: name.to_owned(),
                tenants: tenants.to_vec(),
                admin,
                trusted_assertions,
            })
            .await?;
        anyhow::Ok(())
    })?;
    credentials
        .write(out, Some(ca.certificate_pem()))
        .with_context(|| out.display().to_string())?;
    Ok(
        serde_json::json!({"name": name, "tenants": tenants, "admin": admin, "trusted_assertions": trusted_assertions, "fingerprint": fingerprint, "dir": out.display().to_string()}),
    )
}

/// `sigil admin bootstrap`: the deployment's first admin caller. Mints a
/// certificate from the deployment CA (made here if the data directory
/// has none yet), registers it as an admin for every tenant in the
/// directory the configuration names, and writes it to `out`. Refuses
/// when an admin caller exists (then `sigil admin frontend add --admin`,
/// as that admin, is the way).
///
/// # Errors
/// When an admin exists, the directory is unreachable, the configuration
/// has no owner URL, or `out` cannot be written.
pub fn bootstrap(config: &Config, name: &str, out: &Path) -> anyhow::Result<serde_json::Value> {
    crate::posture::restrict_new_files();
    let layout = Layout {
        root: config.data_dir.clone(),
    };
    std::fs::create_dir_all(&layout.root).with_context(|| layout.root.display().to_string())?;
    let ca = DeploymentCa::create_or_load(&layout.ca())?;
    let credentials = ca.issue_client(name)?;
    let fingerprint = credentials.fingerprint();
    let tenants = vec!["*".to_owned()];
    anyhow::ensure!(
        !out.join("key.pem").exists(),
        "{}: holds credentials already",
        out.display()
    );
    // Written first: a registered admin whose key could not be written
    // would lock the deployment out (bootstrap refuses a second admin).
    credentials
        .write(out, Some(ca.certificate_pem()))
        .with_context(|| out.display().to_string())?;
    let registered = runtime()?.block_on(async {
        // A cluster this command had to start is stopped again when it
        // ends, after the connections to it (declared first, dropped last).
        let (_cluster, owner) = open_owner(config)
            .await
            .map(|(o, c)| (StartedCluster(c), o))?;
        owner
            .bootstrap_admin(&Frontend {
                fingerprint: fingerprint.clone(),
                name: name.to_owned(),
                tenants: tenants.clone(),
                admin: true,
                trusted_assertions: false,
            })
            .await?;
        anyhow::Ok(())
    });
    if let Err(e) = registered {
        for file in ["cert.pem", "key.pem", "ca.pem"] {
            let _ = std::fs::remove_file(out.join(file));
        }
        return Err(e);
    }
    Ok(serde_json::json!({
        "name": name,
        "tenants": tenants,
        "admin": true,
        "fingerprint": fingerprint,
        "dir": out.display().to_string(),
    }))
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
    // One argon2id hash of the load-test password for the whole run.
    let password_hash = super::seed::password_hash()?;
    runtime()?.block_on(async {
        // A cluster this command had to start is stopped again when it
        // ends, after the connections to it (declared first, dropped last).
        let (_cluster, owner) = open_owner(config)
            .await
            .map(|(o, c)| (StartedCluster(c), o))?;
        let bar = indicatif::ProgressBar::new(users);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} seeding [{bar:40}] {pos}/{len} users ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let progress = |done: u64, _total: u64| bar.set_position(done);
        directory::seed::run(
            &owner,
            directory::seed::SeedPlan::new(tenants, users),
            Some(&password_hash),
            &progress,
        )
        .await?;
        // Cleared, so that the summary starts on a line of its own.
        bar.finish_and_clear();
        anyhow::Ok(())
    })?;
    let sizes = directory::seed::SeedPlan::new(tenants, users).sizes();
    Ok(super::seed::summary(
        &sizes,
        users,
        started.elapsed().as_secs_f64(),
    ))
}
