//! `sigil`: the appliance binary. Argument parsing only; the work is in
//! `frontdoor::cli`.
#![forbid(unsafe_code)]
// A command-line tool: its output is stdout.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use frontdoor::cli::client::{run, Step};
use frontdoor::cli::client_calls::{client_steps, ClientCall};
use frontdoor::cli::onboard::{
    AppCommand, SpCommand, TargetArgs, TenantCommand, ADMIN_CERT_DIR_HELP,
};
use frontdoor::config::Config;
use sigil_proto::onboard::OnboardOp;
use sigil_proto::target::credentials_dir;
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
    /// The appliance on the embedded defaults with a short Monday-morning load from sigil-perf,
    /// then its EdDSA and ES256 capacity at p99 <= 5 ms and a plain summary.
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
    // Issue 17: onboarding through the node, as its admin caller.
    /// Tenants: add, list, suspend, resume (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    Tenant {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// OIDC apps: add, list, remove (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    App {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: AppCommand,
    },
    /// SAML SPs: add from metadata, list, remove (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    Sp {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: SpCommand,
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
    /// Users' credentials: set-password, import, unlock (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    User {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: frontdoor::cli::auth::UserCommand,
    },
    /// A tenant's SCIM bearer tokens (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    ScimToken {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: frontdoor::cli::scim_tokens::ScimTokenCommand,
    },
    /// A tenant's sign-on policy: set from a policy.toml, show (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    Policy {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: frontdoor::cli::policy::PolicyCommand,
    },
    /// A tenant's argon2id parameters and lockout rule: set, show (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    AuthSettings {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: frontdoor::cli::policy::AuthSettingsCommand,
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
        /// May assert sign-ins with session_create (a federation or delegation
        /// gateway); without it the caller signs users in with authenticate.
        #[arg(long)]
        trusted_assertions: bool,
        /// Where to write cert.pem, key.pem and ca.pem.
        #[arg(long)]
        out: PathBuf,
    },
    // Issue 17: through the node, as its admin caller.
    /// Every registered caller (through the node, as its admin caller).
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Unregister a caller: every node refuses its certificate from its next request.
    #[command(mut_arg("cert_dir", |arg| arg.help(ADMIN_CERT_DIR_HELP)))]
    Remove {
        #[command(flatten)]
        target: TargetArgs,
        /// The caller's name.
        #[arg(long)]
        name: String,
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

/// Prints an answer as JSON. A reader that went away early (`| head`)
/// is not an error: what it wanted it has.
fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Calls one admin operation, with the embedded default's admin
/// credentials unless --cert-dir says otherwise.
fn as_admin(target: TargetArgs, operation: Operation) -> anyhow::Result<ExitCode> {
    as_admin_all(target, vec![operation])
}

/// Calls admin operations in order, as [`as_admin`] does one.
fn as_admin_all(target: TargetArgs, operations: Vec<Operation>) -> anyhow::Result<ExitCode> {
    let (mut target, within) = target.target();
    if target.cert_dir.is_none() {
        target.cert_dir = Some(credentials_dir(&target.data_dir, "admin"));
    }
    let steps = operations.into_iter().map(Step::Ready).collect();
    let (printed, ok) = runtime()?.block_on(run(&target, within, steps))?;
    print(&printed)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `sigil admin frontend list|remove`, through the node (`add` is local).
fn as_admin_frontend(command: FrontendCommand) -> anyhow::Result<ExitCode> {
    let operation = match command {
        FrontendCommand::List { target } => (target, OnboardOp::FrontendList),
        FrontendCommand::Remove { target, name } => (target, OnboardOp::FrontendRemove { name }),
        FrontendCommand::Add { .. } => anyhow::bail!("frontend add works on the directory"),
    };
    as_admin(operation.0, Operation::Onboard(Box::new(operation.1)))
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
                            trusted_assertions,
                            out,
                        },
                },
        } => {
            print(&frontdoor::cli::admin::frontend_add(
                &node.config()?,
                &name,
                &tenants,
                frontdoor::cli::admin::Powers {
                    admin,
                    trusted_assertions,
                },
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
        // Issue 17: onboarding through the node, as its admin caller.
        Command::Admin {
            command: AdminCommand::Tenant { target, command },
        } => as_admin(target, command.operation()),
        Command::Admin {
            command: AdminCommand::App { target, command },
        } => as_admin(target, command.operation()?),
        Command::Admin {
            command: AdminCommand::Sp { target, command },
        } => as_admin(target, command.operation()?),
        Command::Admin {
            command: AdminCommand::Frontend { command },
        } => as_admin_frontend(command),
        Command::Admin {
            command: AdminCommand::ScimToken { target, command },
        } => as_admin(target, command.operation()),
        // Issue 18: users' credentials.
        Command::Admin {
            command: AdminCommand::User { target, command },
        } => as_admin_all(target, command.operations()?),
        // Issue 18: sign-on policy and auth settings.
        Command::Admin {
            command: AdminCommand::Policy { target, command },
        } => as_admin(target, command.operation()?),
        Command::Admin {
            command: AdminCommand::AuthSettings { target, command },
        } => as_admin(target, command.operation()?),
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
            let (target, within) = target.target();
            let (printed, ok) = runtime()?.block_on(run(&target, within, client_steps(call)?))?;
            print(&printed)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
    }
}
