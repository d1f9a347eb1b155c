//! `sigil client`: every `sigil/1` operation from a shell, answers as JSON
//! on stdout. Without `--target`/`--cert-dir` it talks to the embedded
//! default under `./var` as its demo front end.

use anyhow::Context;

use super::times::with_rfc3339;
use sigil_proto::client::CallError;
use sigil_proto::results::SessionCreated;
use sigil_proto::target::Target;
use sigil_proto::Operation;

/// Turns a CBOR result into JSON for printing, as the node sent it.
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
/// Gives up connecting when the node has not answered `within`.
///
/// # Errors
/// When the connection fails or the node does not answer in time.
pub async fn run(
    target: &Target,
    within: std::time::Duration,
    operations: Vec<Step>,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let client = target.connect_within(1, within).await?;
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
            session = result
                .deserialized::<SessionCreated>()
                .ok()
                .map(|created| created.session);
        }
        all_ok &= outcome.is_ok();
        printed.push(with_rfc3339(outcome_json(&operation, &outcome)));
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
