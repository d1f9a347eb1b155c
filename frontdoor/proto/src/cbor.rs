//! CBOR encoding and decoding of `sigil/1` messages.

use serde::Serialize;

use crate::request::BadRequest;

/// Encodes a CBOR value of any serializable message.
///
/// # Errors
/// Only if `value` cannot be represented (never for the types here).
pub fn to_cbor<T: Serialize>(value: &T) -> Result<Vec<u8>, ciborium::ser::Error<std::io::Error>> {
    let mut out = Vec::with_capacity(256);
    ciborium::into_writer(value, &mut out)?;
    Ok(out)
}

/// Decodes a CBOR message, refusing trailing bytes and nesting deeper than
/// a `sigil/1` message ever needs.
///
/// # Errors
/// [`BadRequest`] describing why the bytes are not such a message.
pub fn from_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, BadRequest> {
    let mut reader = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, 16)
        .map_err(|e| BadRequest(format!("not a sigil/1 message: {e}")))?;
    if !reader.is_empty() {
        return Err(BadRequest("trailing bytes after the CBOR message".into()));
    }
    Ok(value)
}
