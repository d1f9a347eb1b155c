//! Who a caller is: its certificate's fingerprint looked up in the
//! directory once per connection. Only a definite answer is kept; when
//! the directory cannot be reached the caller stays unresolved and is
//! asked about again on each request (answered `unavailable` meanwhile),
//! so an outage is never reported, or remembered, as "not registered".

use rustls_pki_types::CertificateDer;

use super::{Appliance, Caller};

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
            };
        };
        self.lookup_caller(sigil_proto::credentials::fingerprint(&certificate))
            .await
    }

    /// Who has the certificate with `fingerprint`: from the cache, else the
    /// directory. Only a definite answer is cached; a failed lookup leaves
    /// the caller unresolved.
    async fn lookup_caller(&self, fingerprint: String) -> Caller {
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
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up a caller's certificate");
                Caller {
                    frontend: None,
                    fingerprint: Some(fingerprint),
                    unresolved: true,
                }
            }
        }
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
