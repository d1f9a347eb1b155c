//! `sigil admin tenant|app|sp ...` and `sigil admin frontend list|remove`
//! (issue 17): onboarding a customer through a node's QUIC API as its
//! admin caller, so that the commands work against a remote node. Also the
//! flags every command calling a node takes ([`TargetArgs`]).
//!
//! Argument parsing and the operation each command sends; `main.rs` calls
//! the node and prints the answer as JSON like every other command.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use sigil_proto::onboard::{AppRefresh, OnboardOp};
use sigil_proto::target::{Target, DEFAULT_DATA_DIR};
use sigil_proto::Operation;

use super::sp_metadata;

/// `--cert-dir` of the commands that call as the admin caller.
pub const ADMIN_CERT_DIR_HELP: &str = "Admin caller credentials as written by `sigil admin frontend add --admin --out DIR`; default: DATA_DIR/credentials/admin";

/// Which node to call, as whom.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The appliance's QUIC address; default: the embedded default's (from DATA_DIR/endpoints.json).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// Caller credentials as written by `sigil admin frontend add --out DIR`; default: DATA_DIR/credentials/frontend.
    #[arg(long, global = true, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The embedded default's state directory.
    #[arg(long, global = true, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The name to verify in the appliance's certificate; default: the target's host.
    #[arg(long, global = true)]
    pub server_name: Option<String>,
    /// Connect without a client certificate.
    #[arg(long, global = true)]
    pub anonymous: bool,
    /// Seconds to wait for the appliance to answer before giving up.
    #[arg(long, global = true, default_value_t = 3, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

impl TargetArgs {
    /// The target and how long to wait for it.
    pub fn target(self) -> (Target, std::time::Duration) {
        let within = std::time::Duration::from_secs(self.timeout);
        let target = Target {
            target: self.target,
            cert_dir: self.cert_dir,
            data_dir: self.data_dir,
            server_name: self.server_name,
            anonymous: self.anonymous,
        };
        (target, within)
    }
}

/// `sigil admin tenant ...`.
#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// A new tenant (with its group `everyone`; keys, JWKS, discovery and metadata at once).
    Add {
        /// URL name: lowercase letters, digits, '-'.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Every tenant.
    List,
    /// Refuse every token and assertion of the tenant until resumed.
    Suspend {
        /// Tenant slug.
        #[arg(long)]
        slug: String,
    },
    /// Issue again for a suspended tenant.
    Resume {
        /// Tenant slug.
        #[arg(long)]
        slug: String,
    },
}

/// `sigil admin app ...`.
#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// A new OIDC app, usable by the groups and users assigned to it.
    Add {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The app's name (its client_id).
        #[arg(long)]
        name: String,
        /// Signing algorithm: RS256, PS256, ES256, ES384 or EdDSA.
        #[arg(long)]
        alg: String,
        /// Claims, CLAIM=ATTRIBUTE comma-separated (email, name, login, groups, id, or a profile key).
        #[arg(long, value_delimiter = ',')]
        claims: Vec<String>,
        /// Assigned groups, comma-separated (each must exist; every tenant has `everyone`).
        #[arg(long, value_delimiter = ',')]
        assign: Vec<String>,
        /// Assigned users (logins), comma-separated.
        #[arg(long, value_delimiter = ',')]
        assign_users: Vec<String>,
        /// An allowed redirect URI (repeat for more).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where the app takes OpenID Connect back-channel logout tokens
        /// (an absolute http or https URL): told when a session it got a
        /// token in ends.
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        /// Allow refresh tokens (`offline: true`, `sigil client refresh`).
        #[arg(long)]
        refresh_tokens: bool,
        /// Absolute lifetime of a refresh-token family, e.g. 30d, 12h, 90m [default: 30d].
        #[arg(long, value_name = "DURATION", requires = "refresh_tokens",
              value_parser = super::times::parse_duration)]
        refresh_absolute: Option<std::time::Duration>,
        /// Idle lifetime of a refresh token (since the last rotation), e.g. 7d [default: 7d].
        #[arg(long, value_name = "DURATION", requires = "refresh_tokens",
              value_parser = super::times::parse_duration)]
        refresh_idle: Option<std::time::Duration>,
        /// A JWKS file (JSON): the public keys of the app's `private_key_jwt`
        /// client assertions at the introspection and revocation endpoints.
        #[arg(long)]
        jwks: Option<std::path::PathBuf>,
    },
    /// Register (or with `--remove`, drop) an existing app's JWKS.
    SetJwks {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The app's name.
        #[arg(long)]
        name: String,
        /// The JWKS file (JSON).
        #[arg(long, required_unless_present = "remove", conflicts_with = "remove")]
        jwks: Option<std::path::PathBuf>,
        /// Remove the app's JWKS.
        #[arg(long)]
        remove: bool,
    },
    /// The tenant's OIDC apps.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Remove an OIDC app (its tokens are refused `not_found` from then on).
    Remove {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The app's name.
        #[arg(long)]
        name: String,
    },
}

/// `sigil admin sp ...`.
#[derive(Subcommand, Debug)]
pub enum SpCommand {
    /// A new SAML SP from its SAML 2.0 metadata XML.
    Add {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The SP's name in Sigil.
        #[arg(long)]
        name: String,
        /// The SP's metadata file (EntityDescriptor with an SPSSODescriptor).
        #[arg(long, value_name = "FILE")]
        metadata: PathBuf,
        /// Signing algorithm: RS256, ES256, ES384 or EdDSA.
        #[arg(long, default_value = "RS256")]
        alg: String,
        /// SAML attributes, NAME=ATTRIBUTE comma-separated.
        #[arg(long, value_delimiter = ',')]
        attributes: Vec<String>,
        /// Assigned groups, comma-separated (each must exist; every tenant has `everyone`).
        #[arg(long, value_delimiter = ',')]
        assign: Vec<String>,
        /// Assigned users (logins), comma-separated.
        #[arg(long, value_delimiter = ',')]
        assign_users: Vec<String>,
    },
    /// The tenant's SAML SPs.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Remove a SAML SP.
    Remove {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The SP's name.
        #[arg(long)]
        name: String,
    },
}

/// `KEY=VALUE` pairs as a map.
///
/// # Errors
/// For a pair without `=` or with an empty side.
pub fn pairs(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                Ok((k.trim().to_owned(), v.trim().to_owned()))
            }
            _ => anyhow::bail!("--{flag}: {item:?} is not KEY=ATTRIBUTE"),
        })
        .collect()
}

impl TenantCommand {
    /// The operation it sends.
    pub fn operation(self) -> Operation {
        Operation::Onboard(Box::new(match self {
            TenantCommand::Add { slug, name } => OnboardOp::TenantAdd { tenant: slug, name },
            TenantCommand::List => OnboardOp::TenantList,
            TenantCommand::Suspend { slug } => OnboardOp::TenantSuspend { tenant: slug },
            TenantCommand::Resume { slug } => OnboardOp::TenantResume { tenant: slug },
        }))
    }
}

/// A refresh lifetime in whole seconds (`default` when not given).
fn whole_seconds(duration: Option<std::time::Duration>, default: u32) -> anyhow::Result<u32> {
    let Some(duration) = duration else {
        return Ok(default);
    };
    match u32::try_from(duration.as_secs()) {
        Ok(seconds) if seconds > 0 && seconds <= AppRefresh::MAX_S => Ok(seconds),
        _ => anyhow::bail!(
            "a refresh lifetime must be from 1s to {}d",
            AppRefresh::MAX_S / 86_400
        ),
    }
}

impl AppCommand {
    /// The operation it sends.
    ///
    /// # Errors
    /// For a malformed `--claims`.
    pub fn operation(self) -> anyhow::Result<Operation> {
        Ok(Operation::Onboard(Box::new(match self {
            AppCommand::Add {
                tenant,
                name,
                alg,
                claims,
                assign,
                assign_users,
                redirect_uris,
                backchannel_logout_uri,
                refresh_tokens,
                refresh_absolute,
                refresh_idle,
                jwks,
            } => OnboardOp::AppAdd {
                tenant,
                app: name,
                alg,
                claims: pairs("claims", &claims)?,
                assign,
                assign_users,
                redirect_uris,
                backchannel_logout_uri,
                refresh: refresh_tokens
                    .then(|| {
                        anyhow::Ok(AppRefresh {
                            absolute_s: whole_seconds(
                                refresh_absolute,
                                AppRefresh::DEFAULT_ABSOLUTE_S,
                            )?,
                            idle_s: whole_seconds(refresh_idle, AppRefresh::DEFAULT_IDLE_S)?,
                        })
                    })
                    .transpose()?,
                jwks: read_jwks(jwks.as_deref())?,
            },
            AppCommand::SetJwks {
                tenant,
                name,
                jwks,
                remove: _,
            } => OnboardOp::AppSetJwks {
                tenant,
                app: name,
                jwks: read_jwks(jwks.as_deref())?,
            },
            AppCommand::List { tenant } => OnboardOp::AppList { tenant },
            AppCommand::Remove { tenant, name } => OnboardOp::AppRemove { tenant, app: name },
        })))
    }
}

impl SpCommand {
    /// The operation it sends (for `add`, with what the metadata says).
    ///
    /// # Errors
    /// For metadata that cannot be read or used, naming what is wrong.
    pub fn operation(self) -> anyhow::Result<Operation> {
        Ok(Operation::Onboard(Box::new(match self {
            SpCommand::Add {
                tenant,
                name,
                metadata,
                alg,
                attributes,
                assign,
                assign_users,
            } => {
                let sp = sp_metadata::read(&metadata)
                    .with_context(|| format!("--metadata {}", metadata.display()))?;
                OnboardOp::SpAdd {
                    tenant,
                    sp: name,
                    alg,
                    entity_id: sp.entity_id,
                    acs_urls: sp.acs_urls,
                    name_id_format: sp.name_id_format,
                    sign_assertion: sp.want_assertions_signed,
                    claims: pairs("attributes", &attributes)?,
                    assign,
                    assign_users,
                }
            }
            SpCommand::List { tenant } => OnboardOp::SpList { tenant },
            SpCommand::Remove { tenant, name } => OnboardOp::SpRemove { tenant, sp: name },
        })))
    }
}

/// The text of a `--jwks` file (the node checks its keys).
fn read_jwks(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    use anyhow::Context;
    path.map(|path| {
        std::fs::read_to_string(path).with_context(|| format!("--jwks {}", path.display()))
    })
    .transpose()
}
