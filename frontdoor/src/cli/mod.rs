//! The `sigil` command line, one module per command group. `main.rs` only
//! parses arguments and calls in here.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod client;
pub mod client_calls;
pub mod demo;
pub mod demo_summary;
pub mod onboard;
pub mod policy;
pub mod postgres;
pub mod recent;
pub mod scim_tokens;
pub mod seed;
pub mod serve;
pub mod sp_metadata;
pub mod times;

use std::path::PathBuf;

/// The state directory's layout.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The root (`./var`).
    pub root: PathBuf,
}

impl Layout {
    /// The master key file.
    pub fn master_key(&self) -> PathBuf {
        self.root.join("master.key")
    }
    /// The CA directory.
    pub fn ca(&self) -> PathBuf {
        self.root.join("ca")
    }
    /// The private Postgres cluster.
    pub fn postgres(&self) -> PathBuf {
        self.root.join("postgres")
    }
    /// The audit journal of `node`.
    pub fn journal(&self, node: &str) -> PathBuf {
        self.root.join("audit").join(format!("{node}.journal"))
    }
    /// The secret that derives persistent SAML NameIDs.
    pub fn name_id_secret(&self) -> PathBuf {
        self.root.join("nameid.key")
    }
    /// The tenants `node` served recently (loaded first at its next start;
    /// one file per node: the demo's nodes share a state directory).
    pub fn recent_tenants(&self, node: &str) -> PathBuf {
        self.root.join(format!("recent-tenants-{node}"))
    }
}
