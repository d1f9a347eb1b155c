//! `sigil client`: every `sigil/1` operation from a shell, answers as JSON
//! on stdout. Without `--target`/`--cert-dir` it talks to the embedded
//! default under `./var` as its demo front end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{credentials_dir, Endpoints};
use sigil_proto::client::{CallError, Client, ClientConfig};
use sigil_proto::credentials::{load_ca_certificate, Credentials};
use sigil_proto::Operation;

/// How to reach the node and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    /// `HOST:PORT` of the QUIC API; default from `{data_dir}/endpoints.json`.
    pub target: Option<String>,
    /// A directory as written by `sigil admin frontend add --out DIR`
    /// (cert.pem, key.pem, ca.pem); default: the demo front end's.
    pub cert_dir: Option<PathBuf>,
    /// The embedded default's state directory.
    pub data_dir: PathBuf,
    /// The name to verify in the node's certificate; default: from
    /// endpoints.json, else the target's host.
    pub server_name: Option<String>,
    /// Connect without a client certificate (to see `unauthenticated`).
    pub anonymous: bool,
}

impl Target {
    /// Resolves the address, credentials and CA, and connects.
    ///
    /// # Errors
    /// When nothing says where the node is, the credentials are missing,
    /// or the connection fails.
    pub async fn connect(&self, streams: usize) -> anyhow::Result<Client> {
        let config = self.client_config(streams)?;
        Client::connect(config.clone())
            .await
            .with_context(|| format!("connecting to {} as {}", config.target, config.server_name))
    }

    /// The client configuration this target resolves to.
    ///
    /// # Errors
    /// As [`Target::connect`], without connecting.
    pub fn client_config(&self, streams: usize) -> anyhow::Result<ClientConfig> {
        let endpoints = Endpoints::load(&self.data_dir);
        let (target, default_name) = match &self.target {
            Some(text) => {
                let address = resolve(text)?;
                let host = text
                    .rsplit_once(':')
                    .map_or(text.as_str(), |(h, _)| h)
                    .trim_matches(['[', ']']);
                (address, host.to_owned())
            }
            None => {
                let endpoints = endpoints.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                (endpoints.quic, endpoints.server_name.clone())
            }
        };
        let server_name = self.server_name.clone().unwrap_or(default_name);
        let cert_dir = self
            .cert_dir
            .clone()
            .unwrap_or_else(|| credentials_dir(&self.data_dir, "frontend"));
        let ca = load_ca_certificate(&cert_dir.join("ca.pem"))
            .context("the deployment CA (ca.pem in --cert-dir)")?;
        let identity = if self.anonymous {
            None
        } else {
            Some(
                Credentials::load(&cert_dir)
                    .with_context(|| format!("caller credentials in {}", cert_dir.display()))?,
            )
        };
        Ok(ClientConfig {
            target,
            server_name,
            ca,
            identity,
            streams,
        })
    }
}

fn resolve(text: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .with_context(|| format!("--target {text}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("--target {text}: no address"))
}

/// Turns a CBOR result into JSON for printing.
pub fn to_json(value: &ciborium::Value) -> serde_json::Value {
    use ciborium::Value as C;
    use serde_json::Value as J;
    match value {
        C::Integer(i) => {
            let i = i128::from(*i);
            u64::try_from(i)
                .map(J::from)
                .or_else(|_| i64::try_from(i).map(J::from))
                .unwrap_or(J::Null)
        }
        C::Bytes(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        C::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        C::Text(t) => J::String(t.clone()),
        C::Bool(b) => J::Bool(*b),
        C::Null => J::Null,
        C::Tag(_, inner) => to_json(inner),
        C::Array(items) => J::Array(items.iter().map(to_json).collect()),
        C::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_text().map_or_else(|| format!("{k:?}"), str::to_owned),
                        to_json(v),
                    )
                })
                .collect(),
        ),
        _ => J::Null,
    }
}

/// The outcome of one call as printed: `{"op": ..., "result": {...}}` or
/// `{"op": ..., "error": {"code": ..., "message": ...}}`.
pub fn outcome_json(
    operation: &Operation,
    outcome: &Result<ciborium::Value, CallError>,
) -> serde_json::Value {
    match outcome {
        Ok(result) => serde_json::json!({"op": operation.name(), "result": to_json(result)}),
        Err(CallError::Refused(error)) => {
            serde_json::json!({"op": operation.name(), "error": {"code": error.code.as_str(), "message": error.message}})
        }
        Err(other) => {
            serde_json::json!({"op": operation.name(), "error": {"code": "transport", "message": other.to_string()}})
        }
    }
}

/// Runs `operations` in order (each may use the session the previous
/// `session_create` returned: `session: None` means "that one") and returns
/// what to print, and whether every call succeeded.
///
/// # Errors
/// When the connection fails.
pub async fn run(
    target: &Target,
    operations: Vec<Step>,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let client = target.connect(1).await?;
    let mut printed = Vec::new();
    let mut session: Option<String> = None;
    let mut all_ok = true;
    for step in operations {
        let Ok(operation) = step.resolve(session.as_deref()) else {
            // The session_create before it failed and says why.
            all_ok = false;
            break;
        };
        let outcome = client.call(&operation).await;
        if let (Operation::SessionCreate { .. }, Ok(result)) = (&operation, &outcome) {
            session = to_json(result)
                .get("session")
                .and_then(|s| s.as_str())
                .map(str::to_owned);
        }
        all_ok &= outcome.is_ok();
        printed.push(outcome_json(&operation, &outcome));
    }
    client.close().await;
    let value = match printed.len() {
        1 => printed.pop().unwrap_or_default(),
        _ => serde_json::Value::Array(printed),
    };
    Ok((value, all_ok))
}

/// One call of a `sigil client` command, possibly waiting for the session
/// an earlier `session_create` makes.
pub enum Step {
    /// Exactly this operation.
    Ready(Operation),
    /// This operation with the session of the previous step filled in.
    WithSession(Box<dyn FnOnce(String) -> Operation + Send>),
}

impl Step {
    fn resolve(self, session: Option<&str>) -> anyhow::Result<Operation> {
        match self {
            Step::Ready(operation) => Ok(operation),
            Step::WithSession(make) => {
                let session =
                    session.context("no session: the session_create before this failed")?;
                Ok(make(session.to_owned()))
            }
        }
    }
}

/// The default data directory for client commands.
pub fn default_data_dir() -> &'static Path {
    Path::new("./var")
}
