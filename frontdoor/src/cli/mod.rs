//! The `sigil` command line, one module per command group. `main.rs` only
//! parses arguments and calls in here.

pub mod admin;
pub mod audit;
pub mod client;
pub mod demo;
pub mod postgres;
pub mod recent;
pub mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a running embedded node can be reached, written by `sigil serve`
/// into `{data_dir}/endpoints.json` so that `sigil client` and `sigil-perf`
/// find it without flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoints {
    /// The QUIC API address.
    pub quic: SocketAddr,
    /// The HTTP address.
    pub http: SocketAddr,
    /// The name in the node's certificate to verify against.
    pub server_name: String,
}

impl Endpoints {
    /// The file under `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("endpoints.json")
    }

    /// Reads `{data_dir}/endpoints.json`.
    ///
    /// # Errors
    /// When missing (no `sigil serve` has run there) or malformed.
    pub fn load(data_dir: &Path) -> anyhow::Result<Endpoints> {
        let path = Endpoints::path(data_dir);
        let text = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!("{}: {e}; start the appliance with `sigil serve` first, or pass --target and --cert-dir", path.display())
        })?;
        Ok(serde_json::from_slice(&text)?)
    }

    /// Writes `{data_dir}/endpoints.json`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn store(&self, data_dir: &Path) -> anyhow::Result<()> {
        std::fs::write(Endpoints::path(data_dir), serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

/// Where the embedded default keeps the credentials of its demo callers.
pub fn credentials_dir(data_dir: &Path, who: &str) -> PathBuf {
    data_dir.join("credentials").join(who)
}

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
