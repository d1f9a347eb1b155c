//! Arbitrary bytes through the frame decoder, then each frame through the
//! request decoder and the operation checks: nothing may panic, no frame
//! may exceed the limit, and every decoded request re-encodes to a request
//! that decodes to the same operation.
#![no_main]

use sigil_proto::{from_cbor, to_cbor, FrameDecoder, Operation, WireRequest, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)) % (data.len().max(1));
    let mut decoder = FrameDecoder::new();
    for chunk in [&data[..split], &data[split..]] {
        decoder.extend(chunk);
        while let Ok(Some(frame)) = decoder.next_frame() {
            assert!(!frame.is_empty() && frame.len() <= MAX_FRAME);
            if let Ok(wire) = from_cbor::<WireRequest>(&frame) {
                let id = wire.id;
                if let Ok(operation) = Operation::from_wire(wire) {
                    let again: WireRequest = from_cbor(&to_cbor(&operation.to_wire(id)).unwrap()).unwrap();
                    assert_eq!(Operation::from_wire(again).unwrap(), operation);
                }
            }
        }
    }
    let _ = decoder.finish();
});
