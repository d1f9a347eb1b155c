//! `sigil admin scim-token add|list|revoke`: a tenant's SCIM bearer tokens,
//! through the node's QUIC API as its admin caller (so they work against a
//! remote node). `add` prints the token once; only its hash is kept.

use clap::Subcommand;
use sigil_proto::Operation;

/// The `scim-token` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScimTokenCommand {
    /// Make a SCIM bearer token for a tenant; printed once, stored hashed.
    Add {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The token's name (1-63 of A-Z a-z 0-9 . _ -), audited as the author of each SCIM change.
        #[arg(long)]
        name: String,
    },
    /// A tenant's SCIM tokens: names, when made, when revoked (never the tokens).
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a SCIM token: this node refuses it at once, every node within the change-notification delay.
    Revoke {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

impl ScimTokenCommand {
    /// The operation it calls.
    pub fn operation(self) -> Operation {
        match self {
            ScimTokenCommand::Add { tenant, name } => Operation::ScimTokenAdd { tenant, name },
            ScimTokenCommand::List { tenant } => Operation::ScimTokenList { tenant },
            ScimTokenCommand::Revoke { tenant, name } => {
                Operation::ScimTokenRevoke { tenant, name }
            }
        }
    }
}
