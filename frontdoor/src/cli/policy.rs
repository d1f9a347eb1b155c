//! `sigil admin policy set|show` and `sigil admin auth-settings set|show`
//! (issue 18): a tenant's sign-on policy (`policy.toml`, checked by the
//! node before it is stored) and its password hashing and lockout
//! settings, through the node's QUIC API as its admin caller.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use sigil_proto::auth::{AuthOp, AuthSettingsChange};
use sigil_proto::Operation;

use crate::auth::policy::parse_duration;

/// The `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Replace a tenant's sign-on policy with a policy.toml (checked by the node; an empty file is the default policy).
    Set {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The policy.toml file.
        #[arg(long)]
        file: PathBuf,
    },
    /// A tenant's sign-on policy, as JSON: its version, text and rules.
    Show {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

impl PolicyCommand {
    /// The operation it calls.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn operation(self) -> anyhow::Result<Operation> {
        let op = match self {
            PolicyCommand::Set { tenant, file } => AuthOp::PolicySet {
                tenant,
                policy: std::fs::read_to_string(&file)
                    .with_context(|| file.display().to_string())?,
            },
            PolicyCommand::Show { tenant } => AuthOp::PolicyShow { tenant },
        };
        Ok(Operation::Auth(Box::new(op)))
    }
}

/// The `auth-settings` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthSettingsCommand {
    /// Change a tenant's argon2id parameters and lockout rule; what is not given stays.
    Set {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// argon2id memory cost, KiB (8..=4194304; default 19456).
        #[arg(long)]
        argon2_m_kib: Option<u32>,
        /// argon2id iterations (1..=64; default 2).
        #[arg(long)]
        argon2_t: Option<u32>,
        /// argon2id parallelism (1..=64; default 1).
        #[arg(long)]
        argon2_p: Option<u32>,
        /// Consecutive failures that lock a user (at least 1; default 10).
        #[arg(long)]
        lockout_threshold: Option<u32>,
        /// How long a lockout lasts: a number and s, m, h or d (default 15m).
        #[arg(long)]
        lockout_period: Option<String>,
    },
    /// A tenant's argon2id parameters and lockout rule, as JSON.
    Show {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

impl AuthSettingsCommand {
    /// The operation it calls.
    ///
    /// # Errors
    /// When `--lockout-period` is not a duration, or nothing is to change.
    pub fn operation(self) -> anyhow::Result<Operation> {
        let op = match self {
            AuthSettingsCommand::Set {
                tenant,
                argon2_m_kib,
                argon2_t,
                argon2_p,
                lockout_threshold,
                lockout_period,
            } => {
                let lockout_period_s = lockout_period
                    .map(|text| {
                        let seconds = parse_duration(&text).context("--lockout-period")?;
                        u32::try_from(seconds).context("--lockout-period: too long")
                    })
                    .transpose()?;
                let settings = AuthSettingsChange {
                    argon2_m_kib,
                    argon2_t,
                    argon2_p,
                    lockout_threshold,
                    lockout_period_s,
                };
                anyhow::ensure!(
                    settings != AuthSettingsChange::default(),
                    "nothing to set: give at least one of --argon2-m-kib, --argon2-t, --argon2-p, --lockout-threshold, --lockout-period"
                );
                AuthOp::AuthSettingsSet { tenant, settings }
            }
            AuthSettingsCommand::Show { tenant } => AuthOp::AuthSettingsShow { tenant },
        };
        Ok(Operation::Auth(Box::new(op)))
    }
}
