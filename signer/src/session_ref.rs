//! What a signed token or assertion says of the session it came from.
//! A session id is a bearer secret: whoever holds it can ask for tokens
//! in the session (`id_token` with `session`). Relying parties need only
//! to match a session across its tokens (OIDC `sid`, a back-channel
//! logout token's `sid`, SAML's `SessionIndex`), so they get a value
//! derived from it that cannot be turned back into it.

/// The public reference to session `session_id`: the first 128 bits of
/// its SHA-256, base64url (22 characters). One per session, the same in
/// every token, logout token and SAML assertion of that session.
pub fn public_session_id(session_id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, session_id.as_bytes());
    crate::b64::encode(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::public_session_id;

    #[test]
    fn is_stable_short_and_not_the_session() {
        let a = public_session_id("s-1");
        assert_eq!(a, public_session_id("s-1"));
        assert_ne!(a, public_session_id("s-2"));
        assert_eq!(a.len(), 22);
        assert!(!a.contains("s-1"));
    }
}
