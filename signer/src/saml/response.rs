//! Signed SAML Responses.

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SecureRandom;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::xml::{date_time, push_text, text_element, Element};
use super::{NS_ASSERTION, NS_DSIG, NS_PROTOCOL};
use crate::{b64, Error, KeySpec, SigningKey, Timestamp};

/// How long a Response and its bearer confirmation are good for, by default.
pub const DEFAULT_VALIDITY_SECS: u64 = 300;
/// `NotBefore` lies this far before the issue instant, for SPs whose
/// clocks run a little behind.
const CLOCK_SKEW_SECS: u64 = 60;

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";

/// The NameID formats Sigil issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameIdFormat {
    /// The user's email address.
    EmailAddress,
    /// A stable, opaque id per user and SP ([`persistent_name_id`]).
    Persistent,
    /// The user's login.
    Unspecified,
}

impl NameIdFormat {
    /// The format URI.
    pub fn uri(self) -> &'static str {
        match self {
            NameIdFormat::EmailAddress => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            NameIdFormat::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            NameIdFormat::Unspecified => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        }
    }

    /// Parses `emailAddress`, `persistent`, `unspecified` or a format URI.
    ///
    /// # Errors
    /// [`Error::InvalidClaims`] for any other format.
    pub fn parse(text: &str) -> Result<NameIdFormat, Error> {
        [
            NameIdFormat::EmailAddress,
            NameIdFormat::Persistent,
            NameIdFormat::Unspecified,
        ]
        .into_iter()
        .find(|f| f.uri() == text || f.uri().rsplit(':').next() == Some(text))
        .ok_or(Error::InvalidClaims("unknown NameID format"))
    }
}

/// The subject's name as the SP gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameId {
    /// Its format.
    pub format: NameIdFormat,
    /// Its value.
    pub value: String,
}

/// A persistent NameID: HMAC-SHA256 under the tenant's pairwise key over
/// the user id and the SP's entity id, base64url. Stable for a user and an
/// SP; different SPs get unrelated ids (they cannot correlate users); the
/// id reveals nothing about the user without the tenant's key.
pub fn persistent_name_id(tenant_key: &hmac::Key, user_id: &str, sp_entity_id: &str) -> String {
    let mut context = hmac::Context::with_key(tenant_key);
    context.update(user_id.as_bytes());
    context.update(&[0]);
    context.update(sp_entity_id.as_bytes());
    b64::encode(context.sign().as_ref())
}

/// One attribute in the AttributeStatement; several values make it
/// multi-valued (groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name, as the SP's mapping names it.
    pub name: String,
    /// Its values.
    pub values: Vec<String>,
}

/// What to put in a Response.
#[derive(Clone, Debug)]
pub struct ResponseSpec<'a> {
    /// The tenant's issuer (IdP entity id).
    pub issuer: &'a str,
    /// The SP's ACS URL: Response `Destination` and the bearer `Recipient`.
    pub destination: &'a str,
    /// The SP's entity id: the `Audience`.
    pub audience: &'a str,
    /// The AuthnRequest ID, when SP-initiated.
    pub in_response_to: Option<&'a str>,
    /// The subject.
    pub name_id: &'a NameId,
    /// The session index (Sigil's session id or a handle to it).
    pub session_index: &'a str,
    /// When the user authenticated.
    pub authn_instant: Timestamp,
    /// e.g. `urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport`.
    pub authn_context_class: &'a str,
    /// Attributes from the SP's attribute mapping.
    pub attributes: &'a [Attribute],
    /// Lifetime of the Response in seconds (default 300).
    pub validity_secs: u64,
    /// Sign the Assertion (what most SPs require).
    pub sign_assertion: bool,
    /// Sign the Response too.
    pub sign_response: bool,
}

/// A signed Response and what an audit record needs from it.
#[derive(Clone, Debug)]
pub struct SignedResponse {
    /// The XML (not base64; the HTTP-POST binding encodes it).
    pub xml: String,
    /// The Response ID.
    pub response_id: String,
    /// The Assertion ID.
    pub assertion_id: String,
    /// `NotOnOrAfter` of the bearer confirmation and conditions.
    pub not_on_or_after: Timestamp,
}

/// The XML-DSig SignatureMethod for a key: RSA-SHA256 for RS256 keys,
/// ECDSA-SHA256 for ES256 keys.
///
/// # Errors
/// [`Error::UnsupportedKeySpec`] for any other key.
pub fn signature_method(spec: KeySpec) -> Result<&'static str, Error> {
    match spec {
        KeySpec::Rs256(_) => Ok(RSA_SHA256),
        KeySpec::Es256 => Ok(ECDSA_SHA256),
        other => Err(Error::UnsupportedKeySpec(other)),
    }
}

fn new_id(rng: &dyn SecureRandom) -> Result<String, Error> {
    let mut bytes = [0u8; 20];
    rng.fill(&mut bytes).map_err(|_| Error::Random)?;
    // An xs:ID must start with a letter or underscore.
    let mut id = String::with_capacity(42);
    id.push_str("id");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

/// `<ds:SignedInfo>` for one enveloped reference. With `declare_ds` it
/// carries `xmlns:ds` as its canonical form alone does (that is what gets
/// signed); in the document the enclosing Signature declares it.
fn signed_info(
    reference: &str,
    digest_b64: &str,
    method: &str,
    declare_ds: bool,
) -> Result<String, Error> {
    let mut out = String::with_capacity(700);
    let namespaces: &[(&str, &str)] = if declare_ds { &[("ds", NS_DSIG)] } else { &[] };
    let info = Element::open(&mut out, "ds:SignedInfo", namespaces, &[])?;
    Element::open(
        &mut out,
        "ds:CanonicalizationMethod",
        &[],
        &[("Algorithm", EXC_C14N)],
    )?
    .close(&mut out);
    Element::open(
        &mut out,
        "ds:SignatureMethod",
        &[],
        &[("Algorithm", method)],
    )?
    .close(&mut out);
    let uri = format!("#{reference}");
    let reference = Element::open(&mut out, "ds:Reference", &[], &[("URI", &uri)])?;
    let transforms = Element::open(&mut out, "ds:Transforms", &[], &[])?;
    Element::open(&mut out, "ds:Transform", &[], &[("Algorithm", ENVELOPED)])?.close(&mut out);
    Element::open(&mut out, "ds:Transform", &[], &[("Algorithm", EXC_C14N)])?.close(&mut out);
    transforms.close(&mut out);
    Element::open(&mut out, "ds:DigestMethod", &[], &[("Algorithm", SHA256)])?.close(&mut out);
    text_element(&mut out, "ds:DigestValue", &[], &[], digest_b64)?;
    reference.close(&mut out);
    info.close(&mut out);
    Ok(out)
}

/// The enveloped `<ds:Signature>` over the element whose canonical bytes
/// (without this signature) are `signed_bytes`.
fn signature(
    reference: &str,
    signed_bytes: &str,
    key: &dyn SigningKey,
    certificate_b64: &str,
) -> Result<String, Error> {
    let method = signature_method(key.public_key().spec())?;
    let digest_b64 = STANDARD.encode(digest::digest(&digest::SHA256, signed_bytes.as_bytes()));
    let canonical_info = signed_info(reference, &digest_b64, method, true)?;
    let value = STANDARD.encode(key.sign(canonical_info.as_bytes())?);
    let mut out =
        String::with_capacity(canonical_info.len() + value.len() + certificate_b64.len() + 300);
    let signature = Element::open(&mut out, "ds:Signature", &[("ds", NS_DSIG)], &[])?;
    out.push_str(&signed_info(reference, &digest_b64, method, false)?);
    text_element(&mut out, "ds:SignatureValue", &[], &[], &value)?;
    let key_info = Element::open(&mut out, "ds:KeyInfo", &[], &[])?;
    let data = Element::open(&mut out, "ds:X509Data", &[], &[])?;
    text_element(&mut out, "ds:X509Certificate", &[], &[], certificate_b64)?;
    data.close(&mut out);
    key_info.close(&mut out);
    signature.close(&mut out);
    Ok(out)
}

/// Builds a Response per `spec`, signed by `key` (whose certificate is
/// `certificate_der`, as published in the tenant's metadata).
///
/// # Errors
/// [`Error::InvalidClaims`] for empty required fields, characters XML
/// cannot carry, or a request to sign nothing; [`Error::UnsupportedKeySpec`]
/// for keys other than RS256 and ES256; the key's error if signing fails.
pub fn build_signed_response(
    spec: &ResponseSpec<'_>,
    key: &dyn SigningKey,
    certificate_der: &[u8],
    now: Timestamp,
    rng: &dyn SecureRandom,
) -> Result<SignedResponse, Error> {
    if !spec.sign_assertion && !spec.sign_response {
        return Err(Error::InvalidClaims(
            "a SAML Response must sign its Assertion, its Response, or both",
        ));
    }
    for (field, value) in [
        ("issuer", spec.issuer),
        ("destination", spec.destination),
        ("audience", spec.audience),
        ("name id", spec.name_id.value.as_str()),
        ("session index", spec.session_index),
    ] {
        if value.is_empty() {
            return Err(Error::InvalidClaims(match field {
                "issuer" => "SAML issuer is empty",
                "destination" => "SAML destination (ACS URL) is empty",
                "audience" => "SAML audience is empty",
                "name id" => "SAML NameID is empty",
                _ => "SAML session index is empty",
            }));
        }
    }
    signature_method(key.public_key().spec())?;
    let validity = if spec.validity_secs == 0 {
        DEFAULT_VALIDITY_SECS
    } else {
        spec.validity_secs
    };
    let certificate_b64 = STANDARD.encode(certificate_der);
    let response_id = new_id(rng)?;
    let assertion_id = new_id(rng)?;
    let issued = date_time(now)?;
    let not_before = date_time(Timestamp::from_secs(
        now.secs().saturating_sub(CLOCK_SKEW_SECS),
    ))?;
    let not_on_or_after_at = now.plus(validity);
    let not_on_or_after = date_time(not_on_or_after_at)?;

    // The Assertion, in two halves around where its Signature goes.
    let mut head = String::with_capacity(512);
    let assertion = Element::open(
        &mut head,
        "saml:Assertion",
        &[("saml", NS_ASSERTION)],
        &[
            ("ID", &assertion_id),
            ("IssueInstant", &issued),
            ("Version", "2.0"),
        ],
    )?;
    text_element(&mut head, "saml:Issuer", &[], &[], spec.issuer)?;

    let mut tail = String::with_capacity(2048);
    let subject = Element::open(&mut tail, "saml:Subject", &[], &[])?;
    text_element(
        &mut tail,
        "saml:NameID",
        &[],
        &[("Format", spec.name_id.format.uri())],
        &spec.name_id.value,
    )?;
    let confirmation = Element::open(
        &mut tail,
        "saml:SubjectConfirmation",
        &[],
        &[("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")],
    )?;
    let mut data_attributes: Vec<(&str, &str)> = Vec::with_capacity(3);
    if let Some(request) = spec.in_response_to {
        data_attributes.push(("InResponseTo", request));
    }
    data_attributes.push(("NotOnOrAfter", &not_on_or_after));
    data_attributes.push(("Recipient", spec.destination));
    Element::open(
        &mut tail,
        "saml:SubjectConfirmationData",
        &[],
        &data_attributes,
    )?
    .close(&mut tail);
    confirmation.close(&mut tail);
    subject.close(&mut tail);
    let conditions = Element::open(
        &mut tail,
        "saml:Conditions",
        &[],
        &[
            ("NotBefore", &not_before),
            ("NotOnOrAfter", &not_on_or_after),
        ],
    )?;
    let restriction = Element::open(&mut tail, "saml:AudienceRestriction", &[], &[])?;
    text_element(&mut tail, "saml:Audience", &[], &[], spec.audience)?;
    restriction.close(&mut tail);
    conditions.close(&mut tail);
    let authn_instant = date_time(spec.authn_instant)?;
    let statement = Element::open(
        &mut tail,
        "saml:AuthnStatement",
        &[],
        &[
            ("AuthnInstant", &authn_instant),
            ("SessionIndex", spec.session_index),
        ],
    )?;
    let context = Element::open(&mut tail, "saml:AuthnContext", &[], &[])?;
    text_element(
        &mut tail,
        "saml:AuthnContextClassRef",
        &[],
        &[],
        spec.authn_context_class,
    )?;
    context.close(&mut tail);
    statement.close(&mut tail);
    if !spec.attributes.is_empty() {
        let attributes = Element::open(&mut tail, "saml:AttributeStatement", &[], &[])?;
        for attribute in spec.attributes {
            let element = Element::open(
                &mut tail,
                "saml:Attribute",
                &[],
                &[
                    ("Name", &attribute.name),
                    (
                        "NameFormat",
                        "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
                    ),
                ],
            )?;
            for value in &attribute.values {
                let v = Element::open(&mut tail, "saml:AttributeValue", &[], &[])?;
                push_text(&mut tail, value)?;
                v.close(&mut tail);
            }
            element.close(&mut tail);
        }
        attributes.close(&mut tail);
    }
    assertion.close(&mut tail);

    let assertion_xml = if spec.sign_assertion {
        let unsigned = format!("{head}{tail}");
        let signature = signature(&assertion_id, &unsigned, key, &certificate_b64)?;
        format!("{head}{signature}{tail}")
    } else {
        format!("{head}{tail}")
    };

    // The Response around it.
    let mut head = String::with_capacity(512);
    let mut attributes: Vec<(&str, &str)> =
        vec![("Destination", spec.destination), ("ID", &response_id)];
    if let Some(request) = spec.in_response_to {
        attributes.push(("InResponseTo", request));
    }
    attributes.push(("IssueInstant", &issued));
    attributes.push(("Version", "2.0"));
    let response = Element::open(
        &mut head,
        "samlp:Response",
        &[("samlp", NS_PROTOCOL)],
        &attributes,
    )?;
    // Exclusive c14n declares `saml` where it is first used, not on the
    // Response (which does not use it): here, and again on the Assertion.
    text_element(
        &mut head,
        "saml:Issuer",
        &[("saml", NS_ASSERTION)],
        &[],
        spec.issuer,
    )?;
    let mut tail = String::with_capacity(assertion_xml.len() + 256);
    let status = Element::open(&mut tail, "samlp:Status", &[], &[])?;
    Element::open(
        &mut tail,
        "samlp:StatusCode",
        &[],
        &[("Value", "urn:oasis:names:tc:SAML:2.0:status:Success")],
    )?
    .close(&mut tail);
    status.close(&mut tail);
    tail.push_str(&assertion_xml);
    response.close(&mut tail);

    let xml = if spec.sign_response {
        let unsigned = format!("{head}{tail}");
        let signature = signature(&response_id, &unsigned, key, &certificate_b64)?;
        format!("{head}{signature}{tail}")
    } else {
        format!("{head}{tail}")
    };
    Ok(SignedResponse {
        xml,
        response_id,
        assertion_id,
        not_on_or_after: not_on_or_after_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistent_ids_are_stable_per_user_and_sp_and_opaque() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"tenant pairwise key");
        let a = persistent_name_id(&key, "00u1alice", "https://sp.one/");
        assert_eq!(a, persistent_name_id(&key, "00u1alice", "https://sp.one/"));
        assert_ne!(a, persistent_name_id(&key, "00u1alice", "https://sp.two/"));
        assert_ne!(a, persistent_name_id(&key, "00u1bob", "https://sp.one/"));
        assert!(!a.contains("alice"));
        let other_tenant = hmac::Key::new(hmac::HMAC_SHA256, b"another key");
        assert_ne!(
            a,
            persistent_name_id(&other_tenant, "00u1alice", "https://sp.one/")
        );
    }

    #[test]
    fn name_id_formats_parse() {
        assert_eq!(
            NameIdFormat::parse("persistent").ok(),
            Some(NameIdFormat::Persistent)
        );
        assert_eq!(
            NameIdFormat::parse(NameIdFormat::EmailAddress.uri()).ok(),
            Some(NameIdFormat::EmailAddress)
        );
        assert!(NameIdFormat::parse("transient").is_err());
    }
}
