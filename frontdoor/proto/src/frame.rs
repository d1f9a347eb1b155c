//! Framing of `sigil/1` streams: a 4-byte big-endian length, then that many
//! bytes of one CBOR message. Pure code: bytes in, frames out.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest frame body either side may send, in bytes (64 KiB). A SAML
/// Response with many attributes stays far below; a peer that announces more
/// is misbehaving and its stream is closed.
pub const MAX_FRAME: usize = 64 * 1024;

/// Why a stream's framing cannot go on. Either is fatal for the stream only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame announced a body larger than [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME}")]
    TooLarge(usize),
    /// A frame announced an empty body.
    #[error("empty frame")]
    Empty,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({0} bytes pending)")]
    Truncated(usize),
}

/// Splits a byte stream into frame bodies. Feed it whatever arrives with
/// [`FrameDecoder::extend`], then take frames with [`FrameDecoder::next_frame`]
/// until it returns `Ok(None)`.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame body, `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] or [`FrameError::Empty`] as soon as the
    /// length prefix shows it, before the body arrives: the caller closes
    /// the stream without buffering an attacker's megabytes.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let mut prefix = [0u8; 4];
        prefix.copy_from_slice(&self.buffer[..4]);
        let length = u32::from_be_bytes(prefix) as usize;
        if length > MAX_FRAME {
            return Err(FrameError::TooLarge(length));
        }
        if length == 0 {
            return Err(FrameError::Empty);
        }
        if self.buffer.len() < 4 + length {
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }

    /// Bytes received but not yet returned as a frame.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Call when the stream has ended: an error if it ended inside a frame.
    ///
    /// # Errors
    /// [`FrameError::Truncated`] when bytes of an incomplete frame remain.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffer.len() {
            0 => Ok(()),
            n => Err(FrameError::Truncated(n)),
        }
    }
}

/// Appends one frame holding `body` to `out`.
///
/// # Errors
/// [`FrameError::TooLarge`] when `body` exceeds [`MAX_FRAME`] (nothing is
/// written), [`FrameError::Empty`] for an empty body.
pub fn write_frame(body: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    out.reserve(4 + body.len());
    // Fits: MAX_FRAME < u32::MAX.
    out.put_u32(body.len() as u32);
    out.put_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&((MAX_FRAME + 1) as u32).to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0, 0]);
        assert_eq!(decoder.next_frame(), Err(FrameError::Empty));
    }

    #[test]
    fn truncated_stream_is_reported() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0, 5, 1, 2]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated(6)));
    }

    proptest! {
        /// Frames survive any split of the byte stream into reads.
        #[test]
        fn frames_round_trip_through_any_chunking(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..20),
            cuts in proptest::collection::vec(1usize..64, 1..50),
        ) {
            let mut wire = BytesMut::new();
            for body in &bodies {
                write_frame(body, &mut wire).unwrap();
            }
            let mut decoder = FrameDecoder::new();
            let mut seen = Vec::new();
            let mut rest: &[u8] = &wire;
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                decoder.extend(&rest[..n]);
                rest = &rest[n..];
                i += 1;
                while let Some(frame) = decoder.next_frame().unwrap() {
                    seen.push(frame.to_vec());
                }
            }
            prop_assert_eq!(seen, bodies);
            prop_assert!(decoder.finish().is_ok());
        }

        /// Arbitrary bytes never panic the decoder, and it never yields a
        /// frame larger than the limit.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut decoder = FrameDecoder::new();
            decoder.extend(&bytes);
            while let Ok(Some(frame)) = decoder.next_frame() {
                prop_assert!(!frame.is_empty() && frame.len() <= MAX_FRAME);
            }
        }
    }
}
