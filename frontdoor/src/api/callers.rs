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
/// tenant, an admin for admin operations. `health` is open to anyone.
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
            return Err(refuse(
                ErrorCode::Forbidden,
                format!("{} may not act for tenant {tenant}", frontend.name),
            ));
        }
    }
    if operation.needs_admin() && !frontend.admin {
        return Err(refuse(
            ErrorCode::Forbidden,
            format!("{} needs an admin certificate", operation.name()),
        ));
    }
    Ok(())
}

impl Appliance {
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
