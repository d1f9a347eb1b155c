//! The `sigil/1` wire protocol, as pure code: framing ([`frame`]) and
//! messages ([`messages`]). docs/protocol.md is its specification for
//! clients in other languages; the tests here keep the two in step.

pub mod frame;
pub mod messages;

pub use frame::{write_frame, FrameDecoder, FrameError, MAX_FRAME};
pub use messages::{
    from_cbor, to_cbor, BadRequest, ErrorCode, Operation, WireError, WireRequest, WireResponse,
};

/// The ALPN protocol id both sides must offer.
pub const ALPN: &[u8] = b"sigil/1";
