//! A run of consecutive `POST /Users` operations of one `/Bulk` request,
//! written together: one tenant transaction (one statement inserting every
//! row, a row whose `userName` is taken skipped and answered 409 on its
//! own), one commit, and one audit record per created user made durable
//! together, in the operations' order, before the answer leaves. Each
//! operation keeps its own outcome, as if run alone; `failOnErrors` still
//! stops at its limit (later operations are not written).

use axum::http::StatusCode;
use directory::scim::ScimUserWrite;
use serde_json::Value;
use sigil_scim::ScimError;

use super::types::{Failure, Request, Scim};
use super::users;
use crate::api::scim_ops::ScimChange;

type Prepared = Result<(String, ScimUserWrite, Vec<String>), Failure>;

/// The 503 of a shared step (logged once by the caller).
fn unavailable() -> Failure {
    Failure::Status(
        StatusCode::SERVICE_UNAVAILABLE,
        "the directory is unavailable; try again".into(),
    )
}

/// How many of `outcomes` run when `budget` errors stop the request: up
/// to and including the `budget`-th error.
fn kept<T>(outcomes: &[Result<T, Failure>], budget: Option<u64>) -> usize {
    let Some(budget) = budget else {
        return outcomes.len();
    };
    let mut errors = 0u64;
    for (i, outcome) in outcomes.iter().enumerate() {
        if errors >= budget {
            return i;
        }
        if outcome.is_err() {
            errors += 1;
        }
    }
    outcomes.len()
}

/// A creation of the batch: one with a `password` is never batched (it
/// is hashed first, on its own: `bulk::batchable`), and is refused here
/// rather than written without it.
fn prepare(body: &Value) -> Prepared {
    let (id, write, attributes, password) = users::prepare_create(body)?;
    if password.is_some() {
        return Err(ScimError::InvalidValue(
            "a User with a password is created on its own, not in a batch".into(),
        )
        .into());
    }
    Ok((id, write, attributes))
}

/// Creates the users of `bodies`; returns each operation's id or failure,
/// in order, cut where `budget` (failures still allowed) runs out.
pub async fn create_users(
    scim: &Scim,
    request: &Request,
    bodies: &[Value],
    budget: Option<u64>,
) -> Vec<Result<String, Failure>> {
    let prepared: Vec<Prepared> = bodies.iter().map(prepare).collect();
    let directory = scim.appliance.directory();
    let scope = match directory.tenant(request.live.tenant.id).await {
        Ok(scope) => scope,
        Err(e) => {
            tracing::warn!(error = %e, "scim: directory");
            return finish(
                prepared.into_iter().map(|p| p.map(|_| unavailable())),
                budget,
            );
        }
    };
    // Fast path: one statement; redone on fewer operations when
    // `failOnErrors` cuts before an inserted row.
    let mut limit = prepared.len();
    let mut outcomes: Vec<Result<String, Failure>>;
    loop {
        let rows: Vec<(&str, &ScimUserWrite)> = prepared[..limit]
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|(id, w, _)| (id.as_str(), w)))
            .collect();
        let inserted = match scope.savepoint("bulk_create").await {
            Ok(()) => scope.insert_scim_users(&rows).await,
            Err(e) => Err(e),
        };
        let inserted = match inserted {
            Ok(inserted) => inserted,
            Err(e) => {
                // A row Postgres refuses otherwise than as a duplicate:
                // one by one, so that only that operation fails.
                tracing::debug!(error = %e, "scim: bulk insert, one by one");
                if scope.rollback_to("bulk_create").await.is_err() {
                    drop(scope);
                    return finish(
                        prepared.into_iter().map(|p| p.map(|_| unavailable())),
                        budget,
                    );
                }
                outcomes = one_by_one(&scope, &prepared[..limit], budget).await;
                break;
            }
        };
        let mut flags = inserted.into_iter();
        outcomes = prepared[..limit]
            .iter()
            .map(|p| match p {
                Err(f) => Err(copy(f)),
                Ok((id, _, _)) => {
                    if flags.next().unwrap_or(false) {
                        Ok(id.clone())
                    } else {
                        Err(ScimError::Uniqueness("userName is taken".into()).into())
                    }
                }
            })
            .collect();
        let cut = kept(&outcomes, budget);
        if outcomes[cut..].iter().all(Result::is_err) {
            outcomes.truncate(cut);
            break;
        }
        if scope.rollback_to("bulk_create").await.is_err() {
            drop(scope);
            return (0..cut).map(|_| Err(unavailable())).collect();
        }
        limit = cut;
    }
    if let Err(e) = scope.commit().await {
        tracing::warn!(error = %e, "scim: directory");
        return outcomes
            .into_iter()
            .map(|o| o.and_then(|_| Err(unavailable())))
            .collect();
    }
    let mut changes = Vec::new();
    for (outcome, p) in outcomes.iter().zip(&prepared) {
        if let (Ok(id), Ok((_, _, attributes))) = (outcome, p) {
            scim.appliance.forget_user(&request.live, id);
            changes.push(ScimChange {
                operation: "create",
                resource: "User",
                id: id.clone(),
                attributes: attributes.clone(),
                token: request.token.clone(),
            });
        }
    }
    if let Err(e) = scim.appliance.audit_scim_many(&request.live, changes).await {
        return outcomes
            .into_iter()
            .map(|o| o.and_then(|_| Err(Failure::wire(e.clone()))))
            .collect();
    }
    outcomes
}

/// Each prepared row in its own savepoint, in order, stopping at `budget`.
async fn one_by_one(
    scope: &directory::TenantScope<'_>,
    prepared: &[Prepared],
    budget: Option<u64>,
) -> Vec<Result<String, Failure>> {
    let mut outcomes = Vec::with_capacity(prepared.len());
    let mut errors = 0u64;
    for p in prepared {
        if budget.is_some_and(|b| errors >= b) {
            break;
        }
        let outcome = match p {
            Err(f) => Err(copy(f)),
            Ok((id, write, _)) => {
                let written = match scope.savepoint("bulk_one").await {
                    Ok(()) => scope.insert_scim_user(id, write).await,
                    Err(e) => Err(e),
                };
                match written {
                    Ok(()) => Ok(id.clone()),
                    Err(e) => {
                        let failure = Failure::directory(e);
                        if scope.rollback_to("bulk_one").await.is_err() {
                            outcomes.push(Err(failure));
                            // The transaction is lost: so is what it held.
                            return outcomes
                                .into_iter()
                                .map(|o| o.and_then(|_| Err(unavailable())))
                                .collect();
                        }
                        Err(failure)
                    }
                }
            }
        };
        if outcome.is_err() {
            errors += 1;
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// A failure of the checks, again (they are not `Clone`).
fn copy(failure: &Failure) -> Failure {
    match failure {
        Failure::Scim(e) => Failure::Scim(e.clone()),
        Failure::Unauthorized => Failure::Unauthorized,
        Failure::Status(s, m) => Failure::Status(*s, m.clone()),
    }
}

/// Outcomes of operations none of which was written, cut at `budget`.
fn finish(
    outcomes: impl Iterator<Item = Result<Failure, Failure>>,
    budget: Option<u64>,
) -> Vec<Result<String, Failure>> {
    let all: Vec<Result<String, Failure>> =
        outcomes.map(|o| Err(o.unwrap_or_else(|f| f))).collect();
    let cut = kept(&all, budget);
    all.into_iter().take(cut).collect()
}
