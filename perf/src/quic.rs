//! Load over the real QUIC API: each generator thread has its own
//! connection (several pipelined streams) made with the Rust client of
//! `sigil/1`; users with live sessions are prepared before the clock
//! starts, so the load measures issuance, not logins.

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seed_plan::{tenant_slug, user_login, SeedPlan};
use sigil_proto::client::{CallError, Client, ClientConfig};
use sigil_proto::target::{Target, TargetError};
use sigil_proto::Operation;

use crate::engine::{self, Call, Caller, LoadConfig, Mix, Progress, RequestKind};
use crate::progress::{plain_every, plain_line, Snapshot};
use crate::raw;
use crate::report::{scrape, Report};
use crate::schedule::RateProfile;

/// Who the load acts as: (tenant, user, session) triples, dealt
/// round-robin, and the apps (rotated) and SP to ask for.
#[derive(Debug, Clone)]
pub struct Population {
    /// (tenant, user, session); none when the mix needs no session
    /// (`authenticate`, `authenticate-wrong` alone).
    pub sessions: Vec<(String, String, String)>,
    /// (tenant, user) pairs `authenticate` signs in as, dealt round-robin.
    pub auth_users: Vec<(String, String)>,
    /// The password `authenticate` sends (`--auth-password`).
    pub password: String,
    /// OIDC apps, rotated request by request (a mix of algorithms).
    pub apps: Vec<String>,
    /// SAML SP.
    pub sp: String,
}

/// What a run needs to know.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Where and as whom; `target` may name several nodes, comma-separated:
    /// connections are then spread over them.
    pub target: Target,
    /// Tenants and the users of each to sign in before the run.
    pub tenants: Vec<(String, Vec<String>)>,
    /// OIDC apps (the first one's algorithm is the raw baseline).
    pub apps: Vec<String>,
    /// SAML SP.
    pub sp: String,
    /// Sessions prepared per user.
    pub sessions_per_user: usize,
    /// (tenant, user) pairs that `authenticate` signs in as with
    /// `password` (over a seeded directory: those [`seed_plan::password_of`]
    /// gives a password); `authenticate-wrong` uses their tenants.
    pub auth_users: Vec<(String, String)>,
    /// The password of `auth_users`.
    pub password: String,
    /// Arrival schedule.
    pub profile: RateProfile,
    /// Mix of operations.
    pub mix: Mix,
    /// The mix as given (for the report).
    pub mix_text: String,
    /// Generator threads.
    pub threads: usize,
    /// Connections per thread (requests spread round robin).
    pub connections: usize,
    /// Streams per connection.
    pub streams: usize,
    /// The ACK-eliciting threshold asked of the node (`--quic-ack-threshold`).
    pub ack_threshold: u32,
    /// Requests in flight per thread before arrivals are `client_backlog`.
    pub max_in_flight: usize,
    /// The pacer's wake quantum (`--pace-quantum-us`).
    pub pace_quantum: Duration,
    /// The node's HTTP address for /metrics (CPU per operation).
    pub metrics: Option<std::net::SocketAddr>,
    /// `load`, `monday`, `soak`.
    pub profile_name: String,
    /// Where to write charts (SVG); none: no charts.
    pub charts_dir: Option<PathBuf>,
    /// Where to write the latencies as an HdrHistogram interval log
    /// (`--hdr-log`); none: no log.
    pub hdr_log: Option<PathBuf>,
    /// Whether to show progress on stderr while the load runs (a
    /// capacity search's short steps print a line each instead).
    pub progress: bool,
}

/// A load ready to run, made once for any number of runs: the nodes'
/// client configurations, the raw baseline of the apps' algorithms, and
/// the users signed in.
#[derive(Debug, Clone)]
pub struct Prepared {
    configs: Vec<ClientConfig>,
    population: Arc<Population>,
    raw: Vec<crate::raw::RawResult>,
}

struct QuicCaller {
    clients: Vec<Rc<Client>>,
    population: Arc<Population>,
    next: Cell<usize>,
    /// The generator thread (wrong-password logins differ by thread).
    thread: usize,
    /// Live refresh tokens not in flight: (tenant, app, token).
    refresh_tokens: Rc<RefCell<Vec<(String, String, String)>>>,
}

fn code(error: &CallError) -> String {
    error
        .code()
        .map_or_else(|| "transport".to_owned(), |c| c.as_str().to_owned())
}

impl Caller for QuicCaller {
    fn call(&self, kind: RequestKind) -> Call {
        let p = &self.population;
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        let client = Rc::clone(&self.clients[i % self.clients.len()]);
        if matches!(
            kind,
            RequestKind::Authenticate | RequestKind::AuthenticateWrong
        ) {
            return sign_in(client, p, i, self.thread, kind);
        }
        let Some((tenant, user, session)) = p.sessions.get(i % p.sessions.len().max(1)).cloned()
        else {
            return Box::pin(async { Err("no_session".to_owned()) });
        };
        let (app, sp) = (p.apps[i % p.apps.len()].clone(), p.sp.clone());
        let refresh_tokens = Rc::clone(&self.refresh_tokens);
        Box::pin(async move {
            let operation = match kind {
                RequestKind::IdToken => Operation::IdToken {
                    tenant,
                    user,
                    app,
                    session,
                    nonce: None,
                    offline: false,
                },
                RequestKind::AccessToken => Operation::AccessToken {
                    tenant,
                    user,
                    app,
                    session,
                    scope: vec!["openid".into()],
                    offline: false,
                },
                RequestKind::Saml => Operation::Saml {
                    tenant,
                    user,
                    sp,
                    session,
                    in_response_to: None,
                },
                RequestKind::SessionValidate => Operation::SessionValidate { tenant, session },
                RequestKind::Introspect | RequestKind::Jwks => {
                    return Err("an HTTP request: use sigil-perf introspect".into())
                }
                // Sent by sign_in, never here.
                RequestKind::Authenticate | RequestKind::AuthenticateWrong => {
                    return Err("sign_in".into())
                }
                RequestKind::Login => Operation::SessionCreate {
                    tenant,
                    user,
                    amr: vec!["pwd".into()],
                    client: Some("sigil-perf".into()),
                },
                RequestKind::Refresh => {
                    let free = refresh_tokens.borrow_mut().pop();
                    let (tenant, app, token) = match free {
                        Some(free) => free,
                        None => {
                            let issued = client
                                .access_token_offline(&tenant, &user, &app, &session, &["openid"])
                                .await
                                .map_err(|e| code(&e))?;
                            let token = issued.refresh_token.ok_or("no_refresh_token")?;
                            (tenant, app, token)
                        }
                    };
                    let refreshed = client
                        .refresh(&tenant, &app, &token, None)
                        .await
                        .map_err(|e| code(&e))?;
                    if let Some(next) = refreshed.refresh_token {
                        refresh_tokens.borrow_mut().push((tenant, app, next));
                    }
                    return Ok(());
                }
                RequestKind::Revoke => {
                    let created = client
                        .session_create(&tenant, &user, &["pwd"], None)
                        .await
                        .map_err(|e| code(&e))?;
                    Operation::SessionRevoke {
                        tenant,
                        session: created.session,
                    }
                }
            };
            client.call_unit(&operation).await.map_err(|e| code(&e))
        })
    }
}

/// An `authenticate` of the `i`th arrival: the right password for the
/// next of `auth_users` (ok when `SUCCESS`; another status, e.g.
/// `MFA_REQUIRED` or `LOCKED_OUT`, is counted under its name), or for
/// `authenticate-wrong` a wrong one for a login no tenant has (ok never:
/// `invalid_credentials` is counted like any error code, and a `SUCCESS`
/// would be `wrong_password_accepted`). No `client_ip` is sent, so the
/// node's per-address throttle never answers in place of the hashing.
fn sign_in(
    client: Rc<Client>,
    population: &Population,
    i: usize,
    thread: usize,
    kind: RequestKind,
) -> Call {
    let users = &population.auth_users;
    let Some((tenant, user)) = users.get(i % users.len().max(1)).cloned() else {
        return Box::pin(async { Err("no_auth_user".to_owned()) });
    };
    let (user, password) = if kind == RequestKind::AuthenticateWrong {
        (
            format!("perf-unknown-{thread}-{i}"),
            format!("wrong-{thread}-{i}"),
        )
    } else {
        (user, population.password.clone())
    };
    Box::pin(async move {
        let answer = client
            .authenticate(&tenant, &user, &password, None)
            .await
            .map_err(|e| code(&e))?;
        match (kind, answer.status.as_str()) {
            (RequestKind::Authenticate, "SUCCESS") => Ok(()),
            (_, "SUCCESS") => Err("wrong_password_accepted".to_owned()),
            (_, other) => Err(other.to_owned()),
        }
    })
}

/// Signs the users in: `sessions_per_user` sessions each.
///
/// # Errors
/// When the node refuses (unknown tenant or user, wrong credentials).
pub async fn prepare(config: &ClientConfig, plan: &LoadPlan) -> anyhow::Result<Population> {
    let client = Client::connect(config.clone())
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {}: {e}", config.target))?;
    let mut sessions = Vec::new();
    // A mix of sign-ins alone needs no session (and no session_create).
    let tenants: &[(String, Vec<String>)] = if plan.mix.needs_sessions() {
        &plan.tenants
    } else {
        &[]
    };
    for (tenant, users) in tenants {
        for user in users {
            for _ in 0..plan.sessions_per_user.max(1) {
                let created = client
                    .session_create(tenant, user, &["pwd"], Some("sigil-perf"))
                    .await
                    .map_err(|e| anyhow::anyhow!("signing in {user} of {tenant}: {e}"))?;
                sessions.push((tenant.clone(), user.clone(), created.session));
            }
        }
    }
    client.close().await;
    Ok(Population {
        sessions,
        auth_users: plan.auth_users.clone(),
        password: plan.password.clone(),
        apps: plan.apps.clone(),
        sp: plan.sp.clone(),
    })
}

/// The (tenant, user) pairs of `tenants` that have a password: over a
/// seeded directory (`seeded`), the users [`seed_plan::password_of`] gives
/// one; otherwise all.
pub fn auth_users(tenants: &[(String, Vec<String>)], seeded: bool) -> Vec<(String, String)> {
    tenants
        .iter()
        .flat_map(|(tenant, users)| {
            users
                .iter()
                .enumerate()
                .filter(move |(i, _)| !seeded || seed_plan::password_of(*i as u64 + 1).is_some())
                .map(move |(_, user)| (tenant.clone(), user.clone()))
        })
        .collect()
}

/// Tenants and users for a load over a seeded directory (`sigil directory
/// seed --tenants T --users U`): the `tenants` largest seeded tenants, with
/// users (`user1`, `user2`, ...) in proportion to their Zipf-like sizes,
/// `users` in all (at least one per tenant).
pub fn seeded_population(
    seed_tenants: u64,
    seed_users: u64,
    tenants: usize,
    users: usize,
) -> Vec<(String, Vec<String>)> {
    let sizes = SeedPlan::new(seed_tenants, seed_users).sizes();
    let chosen = &sizes[..tenants.min(sizes.len())];
    let total: u64 = chosen.iter().sum();
    chosen
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let share = ((users as u64 * size) / total.max(1)).clamp(1, *size) as usize;
            (
                tenant_slug(i as u64 + 1),
                (1..=share as u64).map(user_login).collect(),
            )
        })
        .collect()
}

/// The algorithm whose raw cost is the baseline for the app (from its
/// name, e.g. `app-es256`), if it can be told.
fn baseline_spec(app: &str) -> Option<signer::KeySpec> {
    let lower = app.to_ascii_lowercase();
    [
        ("eddsa", "EdDSA"),
        ("es384", "ES384"),
        ("es256", "ES256"),
        ("ps256", "PS256"),
        ("rs256", "RS256"),
    ]
    .iter()
    .find(|(needle, _)| lower.contains(needle))
    .and_then(|(_, spec)| spec.parse().ok())
}

/// The client configuration of every node the target names (one, or
/// several comma-separated).
fn client_configs(plan: &LoadPlan) -> Result<Vec<ClientConfig>, TargetError> {
    let mut configs = node_configs(&plan.target, plan.streams)?;
    for config in &mut configs {
        config.ack_threshold = plan.ack_threshold;
    }
    Ok(configs)
}

/// One client configuration per node of `--target` (comma-separated).
fn node_configs(target: &Target, streams: usize) -> Result<Vec<ClientConfig>, TargetError> {
    let Some(list) = &target.target else {
        return Ok(vec![target.client_config(streams)?]);
    };
    list.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|one| {
            Target {
                target: Some(one.to_owned()),
                ..target.clone()
            }
            .client_config(streams)
        })
        .collect()
}

/// Waits until the sessions prepared on the first node are known on every
/// other one (replication takes milliseconds; the load must not start
/// before).
async fn await_replication(
    configs: &[ClientConfig],
    population: &Population,
) -> anyhow::Result<()> {
    let Some((tenant, _, session)) = population.sessions.last() else {
        return Ok(());
    };
    for config in configs.iter().skip(1) {
        let client = Client::connect(config.clone())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {}: {e}", config.target))?;
        let started = Instant::now();
        while let Err(e) = client.session_validate(tenant, session).await {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "the prepared sessions did not reach {}: {e}",
                config.target
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.close().await;
    }
    Ok(())
}

/// Runs a load and returns its report. Shows progress on stderr: a bar on
/// a terminal, otherwise a plain line every few seconds
/// ([`crate::progress::plain_every`]).
///
/// # Errors
/// When the node cannot be reached or the users cannot sign in.
pub fn run(plan: &LoadPlan) -> anyhow::Result<Report> {
    run_prepared(plan, &prepare_run(plan)?)
}

/// Makes what every run of `plan` shares: measures the raw baseline of
/// its apps' algorithms (before any load) and signs its users in.
///
/// # Errors
/// When the node cannot be reached or the users cannot sign in.
pub fn prepare_run(plan: &LoadPlan) -> anyhow::Result<Prepared> {
    let configs = client_configs(plan)?;
    let config = configs
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("--target names no node"))?;
    // The physical baseline, measured in this run, before the load: each
    // algorithm of the rotated apps once (none for a mix of sign-ins
    // alone, which signs nothing and may run beside another load).
    let mut raw = Vec::new();
    let mut specs: Vec<signer::KeySpec> = plan
        .apps
        .iter()
        .filter(|_| plan.mix.needs_sessions())
        .filter_map(|app| baseline_spec(app))
        .collect();
    specs.sort_by_key(|s| s.name());
    specs.dedup();
    for spec in &specs {
        raw.push(
            raw::measure(*spec, Duration::from_secs(1))
                .map_err(|e| anyhow::anyhow!("raw baseline: {e}"))?,
        );
    }
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let population = Arc::new(setup.block_on(prepare(&config, plan))?);
    setup.block_on(await_replication(&configs, &population))?;
    drop(setup);
    Ok(Prepared {
        configs,
        population,
        raw,
    })
}

/// Runs `plan`'s profile over what [`prepare_run`] made (for `plan` or one
/// differing only in profile, charts and progress).
///
/// # Errors
/// When the generator's connections fail.
pub fn run_prepared(plan: &LoadPlan, prepared: &Prepared) -> anyhow::Result<Report> {
    let (configs, population, raw) = (
        &prepared.configs,
        &prepared.population,
        prepared.raw.clone(),
    );
    let before = plan.metrics.and_then(|m| scrape(m).ok());
    let progress = Arc::new(Progress::default());
    let total = plan.profile.duration();
    // A terminal gets a bar; a file or pipe a plain line every few seconds.
    let interactive = std::io::stderr().is_terminal();
    let show = plan.progress;
    let bar = if interactive && show {
        indicatif::ProgressBar::new(total.as_secs().max(1))
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise}/{len}s [{bar:30}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (progress, bar, profile) = (Arc::clone(&progress), bar.clone(), plan.profile);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = (0u64, Instant::now());
            let mut last_line = (0u64, Instant::now());
            while started.elapsed() < total + Duration::from_secs(2)
                && !done.load(Ordering::Relaxed)
            {
                std::thread::sleep(Duration::from_millis(500));
                let ok = progress.ok.load(Ordering::Relaxed);
                if !show {
                    continue;
                }
                if !interactive {
                    if last_line.1.elapsed() >= plain_every(total) {
                        let now = Snapshot {
                            elapsed: started.elapsed(),
                            total,
                            sent: progress.sent.load(Ordering::Relaxed),
                            ok,
                            errors: progress.errors.load(Ordering::Relaxed),
                        };
                        eprintln!("{}", plain_line(&now, last_line.0, last_line.1.elapsed()));
                        last_line = (ok, Instant::now());
                    }
                    continue;
                }
                let rate = (ok - last.0) as f64 / last.1.elapsed().as_secs_f64();
                last = (ok, Instant::now());
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!(
                    "target {:>6.0}/s  ok {:>6.0}/s  errors {}",
                    profile.rate_at(started.elapsed()),
                    rate,
                    progress.errors.load(Ordering::Relaxed)
                ));
            }
        })
    };
    let load = LoadConfig {
        profile: plan.profile,
        threads: plan.threads,
        max_in_flight: plan.max_in_flight,
        pace_quantum: plan.pace_quantum,
    };
    let cpu_before = crate::cpu::process_cpu_seconds();
    let outcome = engine::run(
        &load,
        &plan.mix,
        |thread| {
            let configs = configs.clone();
            let connections = plan.connections;
            let population = Arc::clone(population);
            async move {
                let mut clients = Vec::with_capacity(connections);
                for i in 0..connections.max(1) {
                    // Spread over the nodes named, thread by thread.
                    let config = &configs[(thread * connections + i) % configs.len()];
                    let client = Client::connect(config.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                    clients.push(Rc::new(client));
                }
                Ok(QuicCaller {
                    clients,
                    population,
                    next: Cell::new(0),
                    thread,
                    refresh_tokens: Rc::default(),
                })
            }
        },
        &progress,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    // Stop the watcher before clearing the bar, so that it cannot redraw
    // it and the summary starts on a line of its own.
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    bar.finish_and_clear();
    let generator_cpu_s = crate::cpu::process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let after = plan.metrics.and_then(|m| scrape(m).ok());
    let recorder = &outcome.recorder;
    let generator_cpu_us_per_op = generator_cpu_s
        .filter(|_| recorder.sent_count() > 0)
        .map(|s| s * 1e6 / recorder.sent_count() as f64);
    let ok = recorder.ok_count();
    let duration_s = total.as_secs_f64();
    let server_cpu_us_per_op = match (&before, &after) {
        (Some(b), Some(a)) if ok > 0 => Some((a.cpu_seconds - b.cpu_seconds) * 1e6 / ok as f64),
        _ => None,
    };
    // Apps are rotated request by request: the baseline is the mean raw
    // cost over their algorithms (each app's share is equal).
    let per_app: Vec<f64> = plan
        .apps
        .iter()
        .filter_map(|a| baseline_spec(a))
        .filter_map(|spec| {
            raw.iter()
                .find(|r| r.spec == spec.name())
                .map(|r| r.cpu_us_per_op)
        })
        .collect();
    let raw_cpu_us_per_op = (!per_app.is_empty() && per_app.len() == plan.apps.len())
        .then(|| per_app.iter().sum::<f64>() / per_app.len() as f64);
    let overhead_factor = match (server_cpu_us_per_op, raw_cpu_us_per_op) {
        (Some(server), Some(raw)) if raw > 0.0 => Some(server / raw),
        _ => None,
    };
    let audit_sync_p99_ms = match (&before, &after) {
        (Some(b), Some(a)) => a
            .audit_sync
            .quantile_since(&b.audit_sync, 0.99)
            .map(|seconds| seconds * 1000.0),
        _ => None,
    };
    let target = configs
        .iter()
        .map(|c| c.target.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut timeline = recorder.timeline();
    crate::record::mark_partial(&mut timeline, total);
    if let Some(path) = &plan.hdr_log {
        let seconds: Vec<crate::hdrlog::Second<'_>> = recorder
            .seconds()
            .zip(&timeline)
            .map(|((t, latency), point)| crate::hdrlog::Second {
                offset: std::time::Duration::from_secs(t),
                latency,
                whole: !point.partial,
            })
            .collect();
        let comment = format!(
            "sigil-perf {} against {target} ({})",
            plan.profile_name, plan.mix_text
        );
        crate::hdrlog::write(path, outcome.started_at, &comment, &seconds)?;
    }
    let mut charts = Vec::new();
    if let Some(dir) = &plan.charts_dir {
        std::fs::create_dir_all(dir)?;
        let title = crate::chart::title(
            &plan.profile_name,
            &plan.mix_text,
            plan.tenants.len(),
            &plan.apps,
        );
        let throughput = dir.join(format!("{}-throughput.svg", plan.profile_name));
        let latency = dir.join(format!("{}-latency.svg", plan.profile_name));
        crate::chart::throughput(&throughput, &timeline, &title)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        crate::chart::latency(&latency, &timeline, &title).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        charts = vec![
            throughput.display().to_string(),
            latency.display().to_string(),
        ];
    }
    Ok(Report {
        profile: plan.profile_name.clone(),
        target,
        mix: plan.mix_text.clone(),
        duration_s,
        sent: recorder.sent_count(),
        ok,
        intended_rps: recorder.sent_count() as f64 / duration_s,
        achieved_rps: ok as f64 / outcome.elapsed.as_secs_f64().max(duration_s),
        latency_us: recorder.latency(),
        rejection_latency_us: recorder.rejection_latency(),
        refused_latency_us: recorder.refused_latency(),
        send_lag_us: crate::record::Percentiles::of(&outcome.send_lag_us),
        generator_cpu_us_per_op,
        errors: recorder.errors().clone(),
        server_cpu_us_per_op,
        raw_cpu_us_per_op,
        overhead_factor,
        audit_sync_p99_ms,
        raw,
        server_before: before,
        server_after: after,
        timeline,
        charts,
        soak: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sign_ins_use_only_users_the_seed_gave_a_password() {
        // One tenant of 1,000 users, all of them acted as: only user1 …
        // user256 have the seed's password.
        let tenants = seeded_population(1, 1_000, 1, 1_000);
        assert_eq!(tenants[0].1.len(), 1_000);
        let users = auth_users(&tenants, true);
        assert_eq!(users.len(), seed_plan::PASSWORD_USERS as usize);
        assert_eq!(users[0], ("seed-1".to_owned(), "user1".to_owned()));
        assert_eq!(users[255].1, "user256");
        // Users named on the command line are all signed in as.
        let named = vec![(
            "acme".to_owned(),
            vec!["alice".to_owned(), "bob".to_owned()],
        )];
        assert_eq!(auth_users(&named, false).len(), 2);
    }
}
