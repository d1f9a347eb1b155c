//! Signed chain heads: the anchor of the audit log outside Postgres, in the
//! spirit of Certificate Transparency's signed tree heads (RFC 9162). Each
//! node signs `(tenant, node, seq, hash, time)` of what it has shipped with
//! its own key (in Sigil, the node's key from the deployment CA); the
//! checkpoint beside its journal keeps the newest per tenant, Postgres a
//! copy, an operator as many as they like (`sigil audit head`). A chain in
//! Postgres that does not reach a signed head, or differs from it, has
//! been cut or rewritten.
//!
//! What signs and what verifies are traits: the directory knows no
//! certificates.

use serde::{Deserialize, Serialize};

use crate::Error;

/// A chain head signed by the node that wrote the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// Tenant (its immutable id).
    pub tenant_id: i64,
    /// The node whose chain this is.
    pub node: String,
    /// The last record's sequence number in that chain.
    pub seq: i64,
    /// That record's hash, hex.
    pub hash: String,
    /// When the node signed, ms since the epoch.
    pub at_ms: u64,
    /// The signature over [`SignedHead::message`], hex.
    pub signature: String,
    /// The signer's certificate (DER), hex.
    pub certificate: String,
}

impl SignedHead {
    /// The bytes signed: a fixed label and every field but the signature
    /// and certificate, one per line.
    pub fn message(&self) -> Vec<u8> {
        SignedHead::message_of(self.tenant_id, &self.node, self.seq, &self.hash, self.at_ms)
    }

    fn message_of(tenant_id: i64, node: &str, seq: i64, hash: &str, at_ms: u64) -> Vec<u8> {
        format!("sigil-audit-head-v1\n{tenant_id}\n{node}\n{seq}\n{hash}\n{at_ms}").into_bytes()
    }

    /// Signs a head with `signer`.
    ///
    /// # Errors
    /// The signer's error.
    pub fn sign(
        signer: &dyn HeadSigner,
        tenant_id: i64,
        node: &str,
        seq: i64,
        hash: &str,
        at_ms: u64,
    ) -> Result<SignedHead, Error> {
        let signature = signer.sign(&SignedHead::message_of(tenant_id, node, seq, hash, at_ms))?;
        Ok(SignedHead {
            tenant_id,
            node: node.to_owned(),
            seq,
            hash: hash.to_owned(),
            at_ms,
            signature: hex(&signature),
            certificate: hex(signer.certificate_der()),
        })
    }

    /// The signature's bytes (`None` when the hex is malformed).
    pub fn signature_bytes(&self) -> Option<Vec<u8>> {
        unhex(&self.signature)
    }

    /// The certificate's DER (`None` when the hex is malformed).
    pub fn certificate_der(&self) -> Option<Vec<u8>> {
        unhex(&self.certificate)
    }
}

/// Signs chain heads: a node's key.
pub trait HeadSigner: Send + Sync {
    /// Signs `message`.
    ///
    /// # Errors
    /// [`Error::Journal`] when the key cannot sign.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;

    /// The certificate (DER) that verifies the signatures.
    fn certificate_der(&self) -> &[u8];
}

/// Decides whether a signed head is genuine: its certificate is a node's
/// of this deployment, for the node it names, and the signature holds.
pub trait HeadVerifier {
    /// `Err` says what is wrong.
    ///
    /// # Errors
    /// A short description of why the head is not to be trusted.
    fn verify(&self, head: &SignedHead) -> Result<(), String>;
}

pub(crate) use super::record::hex;

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let bytes = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }

    #[test]
    fn every_field_but_the_signature_is_signed() {
        let head = SignedHead {
            tenant_id: 1,
            node: "n".into(),
            seq: 2,
            hash: "h".into(),
            at_ms: 3,
            signature: String::new(),
            certificate: String::new(),
        };
        let base = head.message();
        for changed in [
            SignedHead {
                tenant_id: 9,
                ..head.clone()
            },
            SignedHead {
                node: "m".into(),
                ..head.clone()
            },
            SignedHead {
                seq: 9,
                ..head.clone()
            },
            SignedHead {
                hash: "g".into(),
                ..head.clone()
            },
            SignedHead {
                at_ms: 9,
                ..head.clone()
            },
        ] {
            assert_ne!(changed.message(), base, "{changed:?}");
        }
    }
}
