//! The command lines of authentication (issue 18): `sigil client
//! authenticate|factor-enroll|factor-activate|factor-verify|password-change`
//! (as a front end) and `sigil admin user set-password|import|unlock` (as
//! the admin caller). Passwords come on standard input, never as flags
//! (a flag shows in `ps` and shell history).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use sigil_proto::auth::{AuthOp, Secret};
use sigil_proto::Operation;

/// The authentication calls of `sigil client`. (Its variants' docs are the
/// help text.)
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum AuthCall {
    /// Verify a user's password (read from stdin) and sign them in: SUCCESS, MFA_REQUIRED, MFA_ENROLL or LOCKED_OUT.
    Authenticate {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
        /// Read the password from the first line of standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The end user's address (throttling, policy).
        #[arg(long)]
        client_ip: Option<String>,
        /// The OIDC app signed in to.
        #[arg(long, conflicts_with = "sp")]
        app: Option<String>,
        /// The SAML SP signed in to.
        #[arg(long)]
        sp: Option<String>,
    },
    /// The second step after MFA_REQUIRED: a one-time code for the state.
    FactorVerify {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The state authenticate answered (base64url: it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        state: String,
        /// The one-time code.
        #[arg(long)]
        otp: String,
    },
    /// Enroll a factor for a user (pending until activated); prints its otpauth URI once.
    FactorEnroll {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
        /// The factor type.
        #[arg(long = "type", default_value = "totp")]
        factor_type: String,
    },
    /// Activate the pending factor with a first code from it.
    FactorActivate {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
        /// The one-time code.
        #[arg(long)]
        otp: String,
        /// The state of an MFA_ENROLL answer: the activation then ends that sign-in with a session.
        #[arg(long, allow_hyphen_values = true)]
        state: Option<String>,
    },
    /// Change a user's password: the old and the new on standard input, one per line.
    PasswordChange {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
    },
}

/// The first `n` lines of standard input, without their line ends.
fn stdin_lines(n: usize) -> anyhow::Result<Vec<String>> {
    let stdin = std::io::stdin();
    let mut lines = Vec::with_capacity(n);
    for _ in 0..n {
        let mut line = String::new();
        let read = stdin
            .lock()
            .read_line(&mut line)
            .context("standard input")?;
        anyhow::ensure!(
            read > 0,
            "expected {n} line(s) on standard input, got {}",
            lines.len()
        );
        let end = line.trim_end_matches(['\n', '\r']).len();
        line.truncate(end);
        lines.push(line);
    }
    Ok(lines)
}

impl AuthCall {
    /// The operation it sends (reading standard input where it takes a
    /// password).
    ///
    /// # Errors
    /// When standard input holds too few lines.
    pub fn operation(self) -> anyhow::Result<Operation> {
        let op = match self {
            AuthCall::Authenticate {
                tenant,
                user,
                client_ip,
                app,
                sp,
                ..
            } => {
                let mut lines = stdin_lines(1)?;
                AuthOp::Authenticate {
                    tenant,
                    user,
                    password: Secret(lines.remove(0)),
                    client_ip,
                    app,
                    sp,
                }
            }
            AuthCall::FactorVerify { tenant, state, otp } => AuthOp::FactorVerify {
                tenant,
                state: Secret(state),
                otp: Secret(otp),
            },
            AuthCall::FactorEnroll {
                tenant,
                user,
                factor_type,
            } => AuthOp::FactorEnroll {
                tenant,
                user,
                factor_type,
            },
            AuthCall::FactorActivate {
                tenant,
                user,
                otp,
                state,
            } => AuthOp::FactorActivate {
                tenant,
                user,
                otp: Secret(otp),
                state: state.map(Secret),
            },
            AuthCall::PasswordChange { tenant, user } => {
                let mut lines = stdin_lines(2)?;
                let new = lines.remove(1);
                AuthOp::PasswordChange {
                    tenant,
                    user,
                    old: Secret(lines.remove(0)),
                    new: Secret(new),
                }
            }
        };
        Ok(Operation::Auth(Box::new(op)))
    }
}

/// `sigil admin user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Set a user's password (read from the first line of standard input); clears any lockout.
    SetPassword {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Import password hashes: JSON lines {"user": LOGIN, "password_hash": "$argon2id$..." or "$2b$..."}.
    Import {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The JSON-lines file.
        #[arg(long)]
        file: PathBuf,
    },
    /// End a user's lockout.
    Unlock {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User login.
        #[arg(long)]
        user: String,
    },
}

/// One line of an import file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    user: String,
    password_hash: String,
}

impl UserCommand {
    /// The operations it sends, in order (one per imported user).
    ///
    /// # Errors
    /// When standard input or the import file cannot be read, or a line of
    /// it is not `{"user": ..., "password_hash": ...}` (nothing is sent
    /// then).
    pub fn operations(self) -> anyhow::Result<Vec<Operation>> {
        let ops = match self {
            UserCommand::SetPassword { tenant, user, .. } => {
                let mut lines = stdin_lines(1)?;
                vec![AuthOp::UserPasswordSet {
                    tenant,
                    user,
                    password: Secret(lines.remove(0)),
                }]
            }
            UserCommand::Import { tenant, file } => {
                let text =
                    std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
                let mut ops = Vec::new();
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let parsed: ImportLine = serde_json::from_str(line)
                        .with_context(|| format!("{} line {}", file.display(), n + 1))?;
                    ops.push(AuthOp::UserPasswordImport {
                        tenant: tenant.clone(),
                        user: parsed.user,
                        password_hash: Secret(parsed.password_hash),
                    });
                }
                ops
            }
            UserCommand::Unlock { tenant, user } => vec![AuthOp::UserUnlock { tenant, user }],
        };
        Ok(ops
            .into_iter()
            .map(|op| Operation::Auth(Box::new(op)))
            .collect())
    }
}
