//! SAML 2.0 SP metadata import for `sigil admin sp add --metadata FILE`:
//! the entityID, the AssertionConsumerService URLs (HTTP-POST ones, the
//! default first), the NameIDFormat (mapped to the stored short names) and
//! WantAssertionsSigned. Parsed with `roxmltree`, which refuses any DTD
//! (so no entity expansion, no XXE); the file is size-limited before it is
//! read whole.

use std::path::Path;

/// Largest metadata file accepted.
pub const MAX_METADATA_BYTES: u64 = 256 * 1024;

const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// What Sigil keeps of an SP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpMetadata {
    /// `EntityDescriptor/@entityID`.
    pub entity_id: String,
    /// HTTP-POST assertion consumer services, the default (`isDefault`,
    /// else lowest `index`) first.
    pub acs_urls: Vec<String>,
    /// `emailAddress`, `persistent` or `unspecified`.
    pub name_id_format: String,
    /// `SPSSODescriptor/@WantAssertionsSigned` (false when absent).
    pub want_assertions_signed: bool,
}

/// Why metadata was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The file could not be read, or is too large.
    #[error("{0}")]
    File(String),
    /// Not well-formed XML, or it has a DTD (refused: entities could
    /// expand or reach out).
    #[error("not usable SAML metadata XML: {0}")]
    Xml(String),
    /// A required element or attribute is missing or unusable.
    #[error("SAML metadata: {0}")]
    Missing(String),
}

/// Reads and parses the metadata in `path`.
///
/// # Errors
/// [`MetadataError`] naming what is wrong.
pub fn read(path: &Path) -> Result<SpMetadata, MetadataError> {
    let size = std::fs::metadata(path)
        .map_err(|e| MetadataError::File(format!("{}: {e}", path.display())))?
        .len();
    if size > MAX_METADATA_BYTES {
        return Err(MetadataError::File(format!(
            "{}: {size} bytes, more than the {MAX_METADATA_BYTES} accepted",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| MetadataError::File(format!("{}: {e}", path.display())))?;
    parse(&text)
}

/// The short name Sigil stores for a NameIDFormat URN.
fn short_name_id_format(urn: &str) -> Option<&'static str> {
    match urn.trim() {
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" => Some("emailAddress"),
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" => Some("persistent"),
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified" => Some("unspecified"),
        _ => None,
    }
}

/// Parses SP metadata text (an `EntityDescriptor`, or an
/// `EntitiesDescriptor` holding exactly one SP).
///
/// # Errors
/// [`MetadataError`] naming what is wrong.
pub fn parse(text: &str) -> Result<SpMetadata, MetadataError> {
    if text.len() as u64 > MAX_METADATA_BYTES {
        return Err(MetadataError::File("metadata too large".into()));
    }
    // roxmltree refuses a DOCTYPE unless allowed: no DTD, no entities.
    let document = roxmltree::Document::parse(text).map_err(|e| {
        let why = match e {
            roxmltree::Error::DtdDetected => "it has a DTD (DOCTYPE), refused".to_owned(),
            other => other.to_string(),
        };
        MetadataError::Xml(why)
    })?;
    let is = |node: &roxmltree::Node<'_, '_>, name: &str| {
        node.is_element()
            && node.tag_name().name() == name
            && node.tag_name().namespace() == Some(MD)
    };
    let mut descriptors = document
        .descendants()
        .filter(|n| is(n, "EntityDescriptor"))
        .filter(|n| n.children().any(|c| is(&c, "SPSSODescriptor")));
    let entity = descriptors.next().ok_or_else(|| {
        MetadataError::Missing(
            "no md:EntityDescriptor with an md:SPSSODescriptor (namespace urn:oasis:names:tc:SAML:2.0:metadata)".into(),
        )
    })?;
    if descriptors.next().is_some() {
        return Err(MetadataError::Missing(
            "more than one SP in the file: give one EntityDescriptor".into(),
        ));
    }
    let entity_id = entity
        .attribute("entityID")
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| MetadataError::Missing("EntityDescriptor has no entityID".into()))?
        .to_owned();
    let sp = entity
        .children()
        .find(|c| is(c, "SPSSODescriptor"))
        .ok_or_else(|| MetadataError::Missing("no SPSSODescriptor".into()))?;
    let want_assertions_signed = matches!(
        sp.attribute("WantAssertionsSigned").map(str::trim),
        Some("true" | "1")
    );
    let mut services: Vec<(bool, u32, String)> = Vec::new();
    let mut other_bindings = Vec::new();
    for acs in sp.children().filter(|c| is(c, "AssertionConsumerService")) {
        let location = acs.attribute("Location").map(str::trim).unwrap_or_default();
        let binding = acs.attribute("Binding").unwrap_or_default();
        if binding != HTTP_POST {
            other_bindings.push(binding.to_owned());
            continue;
        }
        if !location.starts_with("https://") && !location.starts_with("http://") {
            return Err(MetadataError::Missing(format!(
                "AssertionConsumerService Location {location:?} is not an http(s) URL"
            )));
        }
        let default = matches!(acs.attribute("isDefault"), Some("true" | "1"));
        let index = acs
            .attribute("index")
            .and_then(|i| i.parse().ok())
            .unwrap_or(u32::MAX);
        services.push((default, index, location.to_owned()));
    }
    if services.is_empty() {
        return Err(MetadataError::Missing(if other_bindings.is_empty() {
            "no AssertionConsumerService in the SPSSODescriptor".into()
        } else {
            format!(
                "no AssertionConsumerService with the HTTP-POST binding (found only {})",
                other_bindings.join(", ")
            )
        }));
    }
    services.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let formats: Vec<String> = sp
        .children()
        .filter(|c| is(c, "NameIDFormat"))
        .filter_map(|c| c.text().map(|t| t.trim().to_owned()))
        .collect();
    let name_id_format = match formats.first() {
        None => "unspecified",
        Some(_) => formats
            .iter()
            .find_map(|f| short_name_id_format(f))
            .ok_or_else(|| {
                MetadataError::Missing(format!(
                    "NameIDFormat {} is not supported: Sigil sends emailAddress, persistent or unspecified",
                    formats.join(", ")
                ))
            })?,
    };
    Ok(SpMetadata {
        entity_id,
        acs_urls: services.into_iter().map(|(_, _, url)| url).collect(),
        name_id_format: name_id_format.to_owned(),
        want_assertions_signed,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SP: &str = r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://wiki.initech.example/saml">
  <md:SPSSODescriptor WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://wiki.initech.example/redirect" index="0"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://wiki.initech.example/acs2" index="2"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://wiki.initech.example/acs" index="1" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"#;

    #[test]
    fn the_fields_sigil_keeps_are_read() {
        let sp = parse(SP).unwrap();
        assert_eq!(sp.entity_id, "https://wiki.initech.example/saml");
        assert_eq!(
            sp.acs_urls,
            [
                "https://wiki.initech.example/acs",
                "https://wiki.initech.example/acs2"
            ]
        );
        assert_eq!(sp.name_id_format, "persistent");
        assert!(sp.want_assertions_signed);
    }

    #[test]
    fn bad_metadata_is_refused_naming_why() {
        let dtd = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"#;
        assert!(parse(dtd).unwrap_err().to_string().contains("DTD"));
        assert!(matches!(parse("not xml"), Err(MetadataError::Xml(_))));
        let no_acs = SP.replace("AssertionConsumerService", "ArtifactResolutionService");
        assert!(parse(&no_acs)
            .unwrap_err()
            .to_string()
            .contains("no AssertionConsumerService"));
        let no_post = SP.replace("HTTP-POST", "HTTP-Artifact");
        assert!(parse(&no_post)
            .unwrap_err()
            .to_string()
            .contains("HTTP-POST"));
        let transient = SP.replace(
            "2.0:nameid-format:persistent",
            "2.0:nameid-format:transient",
        );
        assert!(parse(&transient)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        let no_id = SP.replace(r#" entityID="https://wiki.initech.example/saml""#, "");
        assert!(parse(&no_id).unwrap_err().to_string().contains("entityID"));
    }
}
