//! Who a caller is, and what it may ask ([`authorize`]). A caller is its
//! certificate's fingerprint, looked up in the directory once per
//! connection. Only a definite answer is kept; when
//! the directory cannot be reached the caller stays unresolved and is
//! asked about again on each request (answered `unavailable` meanwhile),
//! so an outage is never reported, or remembered, as "not registered".

use directory::Frontend;
use rustls_pki_types::CertificateDer;
use sigil_proto::{ErrorCode, Operation, WireError};

use super::audit::AuditEvent;
use super::{refuse, Appliance};

/// Who is calling, resolved once per connection.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The registered front end, if the certificate is known.
    pub frontend: Option<Frontend>,
    /// The certificate's fingerprint, if one was presented.
    pub fingerprint: Option<String>,
    /// The directory could not say whether the certificate is registered
    /// (it was unreachable): every request asks again, and is answered
    /// `unavailable` while it still cannot say. Never cached.
    pub unresolved: bool,
    /// The generation of the node's resolved callers it was resolved in:
    /// when a caller is removed anywhere, the generation moves on and a
    /// connection's caller is resolved again at its next request.
    pub epoch: u64,
}

impl Caller {
    /// The front end's name, for audit records; empty when unregistered.
    pub fn name(&self) -> &str {
        self.frontend.as_ref().map_or("", |f| f.name.as_str())
    }

    /// The audit record of refusing this caller `operation` (its wire
    /// name) with `code`; `None` for rate and overload refusals, which are
    /// counted, not logged (a flood must not become a flood of writes).
    pub fn refusal(&self, operation: &str, code: ErrorCode, reason: &str) -> Option<AuditEvent> {
        if matches!(code, ErrorCode::RateLimited | ErrorCode::Overloaded) {
            return None;
        }
        Some(AuditEvent::Refused {
            op: operation.to_owned(),
            code,
            reason: reason.chars().take(200).collect(),
            caller: self.name().to_owned(),
            fingerprint: self.fingerprint.clone().unwrap_or_default(),
        })
    }
}

/// Whether `caller` may ask for `operation`: a registered front end (the
/// directory reachable to say so), allowed to act for the operation's
/// tenant, an admin for admin operations, registered with
/// `--trusted-assertions` for `session_create`. `health` is open to anyone.
///
/// # Errors
/// `unavailable`, `unauthenticated` or `forbidden`, saying why.
pub fn authorize(caller: &Caller, operation: &Operation) -> Result<(), WireError> {
    if matches!(operation, Operation::Health) {
        return Ok(());
    }
    if caller.unresolved {
        return Err(refuse(
            ErrorCode::Unavailable,
            "the directory cannot say whether this client certificate is registered",
        ));
    }
    let Some(frontend) = &caller.frontend else {
        let why = if caller.fingerprint.is_some() {
            "client certificate not registered"
        } else {
            "no client certificate"
        };
        return Err(refuse(ErrorCode::Unauthenticated, why));
    };
    if let Some(tenant) = operation.tenant() {
        if !frontend.allows(tenant) {
            return Err(outside_list(frontend, tenant));
        }
    }
    if operation.needs_admin() && !frontend.admin {
        return Err(refuse(
            ErrorCode::Forbidden,
            format!("{} needs an admin certificate", operation.name()),
        ));
    }
    // Issue 18: `session_create` takes the caller's word for who signed in
    // and how; only a federation or delegation gateway registered for it
    // may say so. Every other front end proves sign-ins with `authenticate`.
    if matches!(operation, Operation::SessionCreate { .. }) && !frontend.trusted_assertions {
        return Err(refuse(
            ErrorCode::Forbidden,
            format!(
                "front end {} is not registered with --trusted-assertions; use authenticate",
                frontend.name
            ),
        ));
    }
    Ok(())
}

/// Past this many tenants, a refusal names how many a caller may act for
/// instead of listing them.
const TENANTS_NAMED: usize = 5;

/// The refusal of a tenant outside `frontend`'s list. Built from the
/// caller's own list and the name asked for, nothing else: the same words
/// whether or not the tenant exists, so a caller limited to some tenants
/// learns nothing about the others (docs/protocol.md, error codes).
fn outside_list(frontend: &Frontend, tenant: &str) -> WireError {
    let name = &frontend.name;
    let message = match frontend.tenants.as_slice() {
        [] => format!("{name} may act for no tenant: {tenant} is not one of them"),
        [only] => format!("{name} may act only for tenant {only}: {tenant} is not it"),
        list if list.len() <= TENANTS_NAMED => format!(
            "{name} may act only for tenants {}: {tenant} is not one of them",
            list.join(", ")
        ),
        list => format!(
            "{name} may act only for its {} tenants: {tenant} is not one of them",
            list.len()
        ),
    };
    refuse(ErrorCode::Forbidden, message)
}

/// Whether `caller` could know if any tenant name exists: an admin (who
/// manages tenants) or a caller registered for `*`. Such a caller asking
/// for a tenant that does not exist is told `not_found`; any other caller
/// is told `forbidden` for every tenant outside its list.
pub fn may_know_tenants(caller: &Caller) -> bool {
    caller
        .frontend
        .as_ref()
        .is_some_and(|f| f.admin || f.tenants.iter().any(|t| t == "*"))
}

impl Appliance {
    /// An admin refused a tenant outside its list: `not_found` when the
    /// directory has no such tenant (an admin may know that), else the
    /// refusal as it was. Only for callers [`may_know_tenants`] says so.
    pub(super) async fn refusal_for_admin(&self, tenant: &str, refused: WireError) -> WireError {
        if self.tenants.get(tenant).is_some() {
            return refused;
        }
        match self.directory.tenant_by_slug(tenant).await {
            Ok(None) => refuse(ErrorCode::NotFound, format!("no tenant {tenant}")),
            Ok(Some(_)) => refused,
            Err(e) => super::unavailable(e),
        }
    }

    pub(super) async fn resolve_caller(
        &self,
        certificate: Option<CertificateDer<'static>>,
    ) -> Caller {
        let Some(certificate) = certificate else {
            return Caller {
                frontend: None,
                fingerprint: None,
                unresolved: false,
                epoch: self.callers_epoch(),
            };
        };
        self.lookup_caller(sigil_proto::credentials::fingerprint(&certificate))
            .await
    }

    /// Who has the certificate with `fingerprint`: from the cache, else the
    /// directory. Only a definite answer is cached; a failed lookup leaves
    /// the caller unresolved.
    async fn lookup_caller(&self, fingerprint: String) -> Caller {
        // Read before the lookup: a removal meanwhile makes it stale.
        let epoch = self.callers_epoch();
        if let Some(known) = self
            .frontends
            .read()
            .ok()
            .and_then(|f| f.get(&fingerprint).cloned())
        {
            return Caller {
                frontend: known,
                fingerprint: Some(fingerprint),
                unresolved: false,
                epoch,
            };
        }
        match self.directory.frontend(&fingerprint).await {
            Ok(frontend) => {
                if let Ok(mut frontends) = self.frontends.write() {
                    frontends.insert(fingerprint.clone(), frontend.clone());
                }
                Caller {
                    frontend,
                    fingerprint: Some(fingerprint),
                    unresolved: false,
                    epoch,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up a caller's certificate");
                Caller {
                    frontend: None,
                    fingerprint: Some(fingerprint),
                    unresolved: true,
                    epoch,
                }
            }
        }
    }

    /// Forgets every resolved caller (after the directory may have changed
    /// unheard).
    pub(super) fn forget_callers(&self) {
        if let Ok(mut frontends) = self.frontends.write() {
            frontends.clear();
        }
        self.callers_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The generation of resolved callers (see [`Caller::epoch`]).
    pub(super) fn callers_epoch(&self) -> u64 {
        self.callers_epoch
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether `caller` must be resolved again before it is answered: the
    /// directory could not say who it was, or callers were forgotten since
    /// (one was removed: it must be refused at once).
    /// A caller resolved before callers were forgotten and found the same
    /// again since (the cache holds the same answer) is not stale: only
    /// its first request after the change pays for a lookup.
    pub(super) fn stale(&self, caller: &Caller) -> bool {
        if caller.unresolved {
            return true;
        }
        let Some(fingerprint) = &caller.fingerprint else {
            return false;
        };
        if caller.epoch == self.callers_epoch() {
            return false;
        }
        self.frontends.read().map_or(true, |known| {
            known
                .get(fingerprint)
                .is_none_or(|frontend| *frontend != caller.frontend)
        })
    }

    /// A caller the directory could not resolve when it connected, asked
    /// again.
    pub(super) async fn resolve_again(&self, caller: &Caller) -> Caller {
        match &caller.fingerprint {
            Some(fingerprint) => self.lookup_caller(fingerprint.clone()).await,
            None => caller.clone(),
        }
    }
}
