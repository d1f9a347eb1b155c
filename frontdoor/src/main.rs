//! `sigil`: the appliance binary. Argument parsing only; the work is in
//! `frontdoor::cli`.
#![forbid(unsafe_code)]
// A command-line tool: its output is stdout.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use frontdoor::cli::client::{run, Step};
use frontdoor::config::Config;
use sigil_proto::target::{credentials_dir, Target, DEFAULT_DATA_DIR};
use sigil_proto::Operation;

/// mimalloc: per-thread free lists. Requests are built on one worker and
/// their audit records freed on the journal thread; glibc's arenas paid for
/// that with consolidation and locking (7 % of the node's CPU under load,
/// docs/BENCHMARKING.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sigil",
    version,
    about = "Sigil: the signing and token appliance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. With no configuration: the embedded default under ./var.
    Serve {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The appliance on the embedded defaults with a short Monday-morning load from sigil-perf.
    Demo {
        #[command(flatten)]
        node: NodeArgs,
        /// Length of the load.
        #[arg(long, default_value = "30s", value_parser = frontdoor::cli::times::parse_duration)]
        duration: std::time::Duration,
        /// Steady rate (requests/s).
        #[arg(long, default_value_t = 1500.0)]
        base: f64,
        /// Peak rate (5-10x the base on a real Monday).
        #[arg(long, default_value_t = 7500.0)]
        peak: f64,
        /// Nodes in the loopback cluster.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
    /// Operator commands: callers of the QUIC API.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Rotate or revoke a tenant's keys (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    Keys {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log.
    Audit {
        #[command(flatten)]
        node: StateArgs,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The directory.
    Directory {
        #[command(flatten)]
        node: StateArgs,
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// The session cluster: status, and membership changes (as the admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    Cluster {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Call the appliance's QUIC API (sigil/1) and print the answers as JSON.
    Client {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        call: ClientCall,
    },
}

/// Where a command finds a node's state: what every command that works on
/// it directly (not through the QUIC API) takes.
#[derive(Args)]
struct StateArgs {
    /// A TOML configuration file (docs/config.md); none: the embedded default.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// State directory (master key, CA, private Postgres, audit journal).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// This node's name.
    #[arg(long, global = true)]
    node: Option<String>,
}

impl StateArgs {
    /// The configuration with these flags applied, not yet checked.
    fn unchecked(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(node) = &self.node {
            config.node = node.clone();
        }
        Ok(config)
    }

    fn config(&self) -> anyhow::Result<Config> {
        let config = self.unchecked()?;
        config.check()?;
        Ok(config)
    }
}

/// The flags of a command that runs a node (`serve`, `demo`): its state and
/// where it listens.
#[derive(Args)]
struct NodeArgs {
    #[command(flatten)]
    state: StateArgs,
    /// QUIC listen address.
    #[arg(long, global = true)]
    quic_listen: Option<std::net::SocketAddr>,
    /// HTTP listen address.
    #[arg(long, global = true)]
    http_listen: Option<std::net::SocketAddr>,
    /// Serve the HTTP endpoints over TLS (the node's certificate from the deployment CA).
    #[arg(long, global = true)]
    https: bool,
    /// Peers for session replication: name=host:port of their cluster listeners, comma-separated.
    #[arg(long, global = true, value_delimiter = ',')]
    peers: Vec<String>,
    /// Where this node listens for its peers.
    #[arg(long, global = true)]
    cluster_listen: Option<std::net::SocketAddr>,
    /// Control-plane HTTP listen address (SCIM); port 0: any free port.
    #[arg(long, global = true)]
    control_listen: Option<std::net::SocketAddr>,
}

impl NodeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = self.state.unchecked()?;
        if let Some(quic) = self.quic_listen {
            config.listen.quic = quic;
        }
        if let Some(http) = self.http_listen {
            config.listen.http = http;
        }
        if self.https {
            config.listen.https = true;
        }
        if !self.peers.is_empty() {
            config.cluster.peers = self.peers.clone();
        }
        if let Some(listen) = self.cluster_listen {
            config.cluster.listen = listen;
        }
        config.listen.control_listen = self.control_listen.unwrap_or(config.listen.control_listen);
        config.check()?;
        Ok(config)
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Front ends (callers of the QUIC API).
    Frontend {
        #[command(subcommand)]
        command: FrontendCommand,
    },
    /// The deployment's first admin caller (refused once an admin exists).
    Bootstrap {
        #[command(flatten)]
        node: StateArgs,
        /// The admin caller's name.
        #[arg(long, default_value = "admin")]
        name: String,
        /// Where to write cert.pem, key.pem and ca.pem.
        #[arg(long)]
        out: PathBuf,
    },
    /// A tenant's SCIM bearer tokens (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    ScimToken {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: frontdoor::cli::scim_tokens::ScimTokenCommand,
    },
}

#[derive(Subcommand)]
enum FrontendCommand {
    /// Mint a client certificate from the deployment CA and register it.
    Add {
        #[command(flatten)]
        node: StateArgs,
        /// The caller's name.
        #[arg(long)]
        name: String,
        /// Tenants it may act for, comma-separated (`*`: all).
        #[arg(long, value_delimiter = ',', required = true)]
        tenants: Vec<String>,
        /// May rotate and revoke keys.
        #[arg(long)]
        admin: bool,
        /// Where to write cert.pem, key.pem and ca.pem.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Start a rotation now (new keys published at once, signing after pre-publication).
    Rotate {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Only this algorithm.
        #[arg(long)]
        alg: Option<String>,
    },
    /// Emergency: revoke a key now (it leaves JWKS at once; a replacement signs).
    Revoke {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The key id.
        #[arg(long)]
        kid: String,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Each member as the target node sees it: ready, leases held, lag, last heard.
    Status,
    /// Add a node to the membership (start it with --node NAME first, or after).
    Add {
        /// The node's name (its --node).
        #[arg(long)]
        node: String,
        /// Its replication address (its cluster.listen), HOST:PORT.
        #[arg(long)]
        address: String,
    },
    /// Remove a node from the membership for good (it is refused until added again).
    Remove {
        /// The node's name; ask another node than this one.
        #[arg(long)]
        node: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a tenant's hash chains in Postgres against every signed head;
    /// names the first broken link and every head the chain does not reach.
    Verify {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Also prove the chain extends the head(s) in this file (as
        /// printed by `sigil audit head`).
        #[arg(long, value_name = "FILE")]
        head: Option<PathBuf>,
    },
    /// The newest signed chain head of a tenant by this node, as JSON.
    Head {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// What the journals hold that Postgres does not yet, and since when.
    Status,
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Load synthetic tenants (Zipf-like sizes) and users with COPY.
    Seed {
        /// Tenants.
        #[arg(long, default_value_t = 19_000)]
        tenants: u64,
        /// Users in total.
        #[arg(long, default_value_t = 1_000_000)]
        users: u64,
    },
}

/// `--cert-dir` of the commands that call as the admin caller ([`as_admin`]).
const ADMIN_CERT_DIR_HELP: &str = "Admin caller credentials as written by `sigil admin frontend add --admin --out DIR`; default: DATA_DIR/credentials/admin";

#[derive(Args)]
struct TargetArgs {
    /// The appliance's QUIC address; default: the embedded default's (from DATA_DIR/endpoints.json).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    target: Option<String>,
    /// Caller credentials as written by `sigil admin frontend add --out DIR`; default: DATA_DIR/credentials/frontend.
    #[arg(long, global = true, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// The embedded default's state directory.
    #[arg(long, global = true, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The name to verify in the appliance's certificate; default: the target's host.
    #[arg(long, global = true)]
    server_name: Option<String>,
    /// Connect without a client certificate.
    #[arg(long, global = true)]
    anonymous: bool,
    /// Seconds to wait for the appliance to answer before giving up.
    #[arg(long, global = true, default_value_t = 3, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

#[derive(Subcommand)]
enum ClientCall {
    /// Is the node up and ready?
    Health,
    /// An OIDC ID token (creates a session first unless --session is given).
    IdToken {
        #[command(flatten)]
        who: Who,
        /// The OIDC app, e.g. app-es256.
        #[arg(long)]
        app: String,
        /// OIDC nonce.
        #[arg(long)]
        nonce: Option<String>,
    },
    /// An OAuth access token (creates a session first unless --session is given).
    AccessToken {
        #[command(flatten)]
        who: Who,
        /// The OIDC app, e.g. app-eddsa.
        #[arg(long)]
        app: String,
        /// Scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
    },
    /// A signed SAML Response (creates a session first unless --session is given).
    Saml {
        #[command(flatten)]
        who: Who,
        /// The SAML SP, e.g. sp-rs256.
        #[arg(long)]
        sp: String,
        /// The AuthnRequest ID answered.
        #[arg(long)]
        in_response_to: Option<String>,
    },
    /// Sessions: create, validate, touch, revoke.
    Session {
        #[command(subcommand)]
        call: SessionCall,
    },
    /// Revoke every session of a user, on every node.
    RevokeUser {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
    },
    /// Deactivate a user: no token or assertion for them once this returns.
    Deactivate {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
    },
}

#[derive(Args)]
struct Who {
    /// Tenant slug, e.g. acme.
    #[arg(long)]
    tenant: String,
    /// User login, e.g. alice.
    #[arg(long)]
    user: String,
    /// An existing session; default: create one (amr pwd) first.
    #[arg(long, allow_hyphen_values = true)]
    session: Option<String>,
}

#[derive(Subcommand)]
enum SessionCall {
    /// A new session for a user.
    Create {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
        /// Authentication methods, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "pwd")]
        amr: Vec<String>,
    },
    /// Is a session valid?
    Validate {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Session id (base64url: it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        session: String,
    },
    /// Record activity on a session.
    Touch {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Session id (base64url: it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        session: String,
    },
    /// Revoke a session on every node.
    Revoke {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Session id (base64url: it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        session: String,
    },
}

/// A session-needing call: the given session, or a new one first.
fn with_session(
    who: Who,
    make: impl FnOnce(String, String, String) -> Operation + Send + 'static,
) -> Vec<Step> {
    let Who {
        tenant,
        user,
        session,
    } = who;
    match session {
        Some(session) => vec![Step::Ready(make(tenant, user, session))],
        None => vec![
            Step::Ready(Operation::SessionCreate {
                tenant: tenant.clone(),
                user: user.clone(),
                amr: vec!["pwd".into()],
                client: Some("sigil client".into()),
            }),
            Step::WithSession(Box::new(move |session| make(tenant, user, session))),
        ],
    }
}

fn client_steps(call: ClientCall) -> Vec<Step> {
    match call {
        ClientCall::Health => vec![Step::Ready(Operation::Health)],
        ClientCall::IdToken { who, app, nonce } => {
            with_session(who, move |tenant, user, session| Operation::IdToken {
                tenant,
                user,
                app,
                session,
                nonce,
            })
        }
        ClientCall::AccessToken { who, app, scope } => {
            with_session(who, move |tenant, user, session| Operation::AccessToken {
                tenant,
                user,
                app,
                session,
                scope,
            })
        }
        ClientCall::Saml {
            who,
            sp,
            in_response_to,
        } => with_session(who, move |tenant, user, session| Operation::Saml {
            tenant,
            user,
            sp,
            session,
            in_response_to,
        }),
        ClientCall::Session { call } => vec![Step::Ready(match call {
            SessionCall::Create { tenant, user, amr } => Operation::SessionCreate {
                tenant,
                user,
                amr,
                client: Some("sigil client".into()),
            },
            SessionCall::Validate { tenant, session } => {
                Operation::SessionValidate { tenant, session }
            }
            SessionCall::Touch { tenant, session } => Operation::SessionTouch { tenant, session },
            SessionCall::Revoke { tenant, session } => Operation::SessionRevoke { tenant, session },
        })],
        ClientCall::RevokeUser { tenant, user } => {
            vec![Step::Ready(Operation::UserRevokeSessions { tenant, user })]
        }
        ClientCall::Deactivate { tenant, user } => {
            vec![Step::Ready(Operation::UserDeactivate { tenant, user })]
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    // What the node logs (internal errors with their causes, refused peers)
    // goes to stderr; RUST_LOG=info (or a finer filter) shows more.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn target_of(target: TargetArgs) -> (Target, std::time::Duration) {
    let within = std::time::Duration::from_secs(target.timeout);
    let target = Target {
        target: target.target,
        cert_dir: target.cert_dir,
        data_dir: target.data_dir,
        server_name: target.server_name,
        anonymous: target.anonymous,
    };
    (target, within)
}

/// Calls one admin operation, with the embedded default's admin
/// credentials unless --cert-dir says otherwise.
fn as_admin(target: TargetArgs, operation: Operation) -> anyhow::Result<ExitCode> {
    let (mut target, within) = target_of(target);
    if target.cert_dir.is_none() {
        target.cert_dir = Some(credentials_dir(&target.data_dir, "admin"));
    }
    let (printed, ok) = runtime()?.block_on(run(&target, within, vec![Step::Ready(operation)]))?;
    print(&printed)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn audit(config: &Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { tenant, head } => {
            let (report, whole) = frontdoor::cli::audit::verify(config, &tenant, head.as_deref())?;
            print(&report)?;
            Ok(if whole {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(4)
            })
        }
        AuditCommand::Head { tenant } => {
            print(&frontdoor::cli::audit::head(config, &tenant)?)?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Status => {
            print(&frontdoor::cli::audit::status(config)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    // Whatever sigil writes (state, credentials, reports) is its account's.
    frontdoor::posture::restrict_new_files();
    match Cli::parse().command {
        Command::Demo {
            node,
            duration,
            base,
            peak,
            nodes,
        } => {
            let ok = frontdoor::cli::demo::run(
                &node.config()?,
                frontdoor::cli::demo::DemoLoad {
                    duration,
                    base,
                    peak,
                    nodes,
                },
            )?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Serve { node } => {
            frontdoor::cli::serve::run(&node.config()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            command:
                AdminCommand::Frontend {
                    command:
                        FrontendCommand::Add {
                            node,
                            name,
                            tenants,
                            admin,
                            out,
                        },
                },
        } => {
            print(&frontdoor::cli::admin::frontend_add(
                &node.config()?,
                &name,
                &tenants,
                admin,
                &out,
            )?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            command: AdminCommand::Bootstrap { node, name, out },
        } => {
            print(&frontdoor::cli::admin::bootstrap(
                &node.config()?,
                &name,
                &out,
            )?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            command: AdminCommand::ScimToken { target, command },
        } => as_admin(target, command.operation()),
        Command::Keys { target, command } => {
            let operation = match command {
                KeysCommand::Rotate { tenant, alg } => Operation::KeysRotate { tenant, alg },
                KeysCommand::Revoke { tenant, kid } => Operation::KeysRevoke { tenant, kid },
            };
            as_admin(target, operation)
        }
        Command::Cluster { target, command } => {
            let operation = match command {
                ClusterCommand::Status => Operation::ClusterStatus,
                ClusterCommand::Add { node, address } => Operation::ClusterAdd { node, address },
                ClusterCommand::Remove { node } => Operation::ClusterRemove { node },
            };
            as_admin(target, operation)
        }
        Command::Audit { node, command } => audit(&node.config()?, command),
        Command::Directory {
            node,
            command: DirectoryCommand::Seed { tenants, users },
        } => {
            print(&frontdoor::cli::admin::directory_seed(
                &node.config()?,
                tenants,
                users,
            )?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client { target, call } => {
            let (target, within) = target_of(target);
            let (printed, ok) = runtime()?.block_on(run(&target, within, client_steps(call)))?;
            print(&printed)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// base64url session ids start with `-` one time in 64.
    #[test]
    fn a_session_id_may_start_with_a_hyphen() {
        let id = "-Abc_def-ghijklmnopqrstuvwxyz0123456789ABCD";
        let cli = Cli::try_parse_from([
            "sigil",
            "client",
            "id-token",
            "--tenant",
            "acme",
            "--user",
            "alice",
            "--app",
            "app-eddsa",
            "--session",
            id,
        ])
        .unwrap();
        let Command::Client {
            call: ClientCall::IdToken { who, .. },
            ..
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(who.session.as_deref(), Some(id));
        for call in ["validate", "touch", "revoke"] {
            let cli = Cli::try_parse_from([
                "sigil",
                "client",
                "session",
                call,
                "--tenant",
                "acme",
                "--session",
                id,
            ])
            .unwrap();
            let Command::Client {
                call: ClientCall::Session { call },
                ..
            } = cli.command
            else {
                panic!("parsed as another command");
            };
            let session = match call {
                SessionCall::Validate { session, .. }
                | SessionCall::Touch { session, .. }
                | SessionCall::Revoke { session, .. } => session,
                SessionCall::Create { .. } => panic!("parsed as create"),
            };
            assert_eq!(session, id);
        }
    }
}
