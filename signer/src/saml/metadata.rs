//! IdP metadata per tenant.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::xml::{text_element, Element};
use super::{NameIdFormat, NS_DSIG, NS_METADATA, NS_PROTOCOL};
use std::sync::Arc;

use crate::{Error, KeyRingView, KeySpec, KeyState, SigningKey};

/// The keys whose certificates go into a tenant's metadata: the active SAML
/// signing keys (RS256, ES256) and, during rotation, the pending ones, so SPs
/// that pin certificates learn a key before it signs. Retiring keys are left
/// out: Responses live minutes and are checked on arrival.
pub fn metadata_keys(view: &KeyRingView) -> Vec<Arc<dyn SigningKey>> {
    view.published()
        .iter()
        .filter(|p| matches!(p.state, KeyState::Active | KeyState::Pending))
        .filter(|p| {
            matches!(
                p.key.public_key().spec(),
                KeySpec::Rs256(_) | KeySpec::Es256
            )
        })
        .map(|p| Arc::clone(&p.key))
        .collect()
}

/// Where SPs send AuthnRequests (the SSO web tier, not Sigil).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoLocations {
    /// HTTP-Redirect binding endpoint.
    pub redirect: String,
    /// HTTP-POST binding endpoint.
    pub post: String,
}

/// Renders `md:EntityDescriptor` for a tenant: its entity id (issuer), one
/// `KeyDescriptor use="signing"` per certificate (the active key's and,
/// during rotation, the pending key's), the NameID formats, and the SSO
/// endpoints.
///
/// # Errors
/// [`Error::InvalidClaims`] if a value holds characters XML cannot carry.
pub fn render_metadata(
    entity_id: &str,
    certificates_der: &[Vec<u8>],
    sso: &SsoLocations,
) -> Result<String, Error> {
    let mut out = String::with_capacity(
        1024 + certificates_der
            .iter()
            .map(|c| c.len() * 4 / 3 + 200)
            .sum::<usize>(),
    );
    let entity = Element::open(
        &mut out,
        "md:EntityDescriptor",
        &[("md", NS_METADATA)],
        &[("entityID", entity_id)],
    )?;
    let idp = Element::open(
        &mut out,
        "md:IDPSSODescriptor",
        &[],
        &[
            ("WantAuthnRequestsSigned", "false"),
            ("protocolSupportEnumeration", NS_PROTOCOL),
        ],
    )?;
    for certificate in certificates_der {
        let descriptor = Element::open(&mut out, "md:KeyDescriptor", &[], &[("use", "signing")])?;
        let info = Element::open(&mut out, "ds:KeyInfo", &[("ds", NS_DSIG)], &[])?;
        let data = Element::open(&mut out, "ds:X509Data", &[], &[])?;
        text_element(
            &mut out,
            "ds:X509Certificate",
            &[],
            &[],
            &STANDARD.encode(certificate),
        )?;
        data.close(&mut out);
        info.close(&mut out);
        descriptor.close(&mut out);
    }
    for format in [
        NameIdFormat::EmailAddress,
        NameIdFormat::Persistent,
        NameIdFormat::Unspecified,
    ] {
        text_element(&mut out, "md:NameIDFormat", &[], &[], format.uri())?;
    }
    for (binding, location) in [
        (
            "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            &sso.redirect,
        ),
        ("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", &sso.post),
    ] {
        Element::open(
            &mut out,
            "md:SingleSignOnService",
            &[],
            &[("Binding", binding), ("Location", location)],
        )?
        .close(&mut out);
    }
    idp.close(&mut out);
    entity.close(&mut out);
    Ok(out)
}
