//! X.509 certificates for signing keys, made with rcgen and signed through
//! the [`SigningKey`] trait, so keys in an HSM get certificates signed by
//! the HSM. SAML metadata publishes them; SPs pin them.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyUsagePurpose, PublicKeyData, SerialNumber,
    SignatureAlgorithm,
};

use crate::{Error, KeySpec, SigningKey, Timestamp};

/// Adapts a [`SigningKey`] to rcgen's signer.
struct RcgenSigner<'a> {
    key: &'a dyn SigningKey,
    algorithm: &'static SignatureAlgorithm,
    /// The subjectPublicKey BIT STRING contents of the key's SPKI.
    public_bits: Vec<u8>,
}

impl PublicKeyData for RcgenSigner<'_> {
    fn subject_public_key_info(&self) -> Vec<u8> {
        self.key.public_key().spki_der().to_vec()
    }

    fn der_bytes(&self) -> &[u8] {
        &self.public_bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl rcgen::SigningKey for RcgenSigner<'_> {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature = self
            .key
            .sign(message)
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(match self.key.public_key().spec() {
            // X.509 carries ECDSA signatures as DER Ecdsa-Sig-Value, not the
            // r || s that JWS and XML-DSig use.
            KeySpec::Es256 | KeySpec::Es384 => ecdsa_der(&signature),
            _ => signature,
        })
    }
}

/// DER of one non-negative INTEGER from big-endian bytes.
fn der_integer(bytes: &[u8], out: &mut Vec<u8>) {
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    let trimmed = &bytes[first..];
    let pad = trimmed.first().is_some_and(|&b| b & 0x80 != 0);
    out.push(0x02);
    // At most 49 bytes for P-384: always the short length form.
    out.push((trimmed.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
}

/// `r || s` (equal halves) to `SEQUENCE { INTEGER r, INTEGER s }`.
fn ecdsa_der(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = Vec::with_capacity(raw.len() + 8);
    der_integer(r, &mut body);
    der_integer(s, &mut body);
    // At most 2 * (2 + 49) = 102 bytes for P-384: short form.
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// A DER certificate as PEM (`-----BEGIN CERTIFICATE-----`, 64-column
/// base64), the form OpenSSL, xmlsec1 and operators' tools read.
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 60);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// A self-signed certificate for `key`: subject CN = `common_name` (the
/// tenant's issuer), valid from `not_before` for `validity_days`, key usage
/// digitalSignature, a random serial. Returns DER.
///
/// # Errors
/// [`Error::UnsupportedKeySpec`] for PS256 keys (rcgen cannot express
/// RSASSA-PSS certificates; SAML signs with RS256 or ECDSA keys);
/// [`Error::Signing`] when the key or rcgen fails.
pub fn self_signed_certificate(
    key: &dyn SigningKey,
    common_name: &str,
    not_before: Timestamp,
    validity_days: u32,
    rng: &dyn aws_lc_rs::rand::SecureRandom,
) -> Result<Vec<u8>, Error> {
    let spec = key.public_key().spec();
    let algorithm: &'static SignatureAlgorithm = match spec {
        KeySpec::Rs256(_) => &rcgen::PKCS_RSA_SHA256,
        KeySpec::Es256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeySpec::Es384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeySpec::EdDsa => &rcgen::PKCS_ED25519,
        KeySpec::Ps256(_) => return Err(Error::UnsupportedKeySpec(spec)),
    };
    let spki = key.public_key().spki_der();
    let (_, parsed) =
        <x509_parser::x509::SubjectPublicKeyInfo<'_> as x509_parser::prelude::FromDer<
            '_,
            x509_parser::error::X509Error,
        >>::from_der(spki)
        .map_err(|_| Error::KeyRejected)?;
    let signer = RcgenSigner {
        key,
        algorithm,
        public_bits: parsed.subject_public_key.data.to_vec(),
    };
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    let start =
        i64::try_from(not_before.secs()).map_err(|_| Error::InvalidClaims("time out of range"))?;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(start)
        .map_err(|_| Error::InvalidClaims("time out of range"))?;
    params.not_after = params.not_before + time::Duration::days(i64::from(validity_days));
    let mut serial = [0u8; 16];
    rng.fill(&mut serial).map_err(|_| Error::Random)?;
    serial[0] &= 0x7f; // positive, as RFC 5280 requires
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let certificate = params.self_signed(&signer).map_err(|_| Error::Signing)?;
    Ok(certificate.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_minimal_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero
        raw[32] = 0x00;
        raw[33] = 0x01; // s has a leading zero to drop
        let der = ecdsa_der(&raw);
        assert_eq!(&der[..4], &[0x30, der.len() as u8 - 2, 0x02, 33]);
        assert_eq!(der[4], 0x00);
        let s_at = 4 + 33;
        assert_eq!(&der[s_at..s_at + 3], &[0x02, 31, 0x01]);
    }
}
