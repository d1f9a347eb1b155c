//! The codec of `sigil/1` does what docs/protocol.md says, read from the
//! document itself where it gives bytes or numbers: the example frame, the
//! definition of control characters, which keys the field rules apply to,
//! when an undecodable request can still be answered by its id, and what
//! a scope may hold. The node's side (streams, limits, TLS) is tested over
//! QUIC in frontdoor/tests/node_follows_the_spec.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ciborium::Value;
use sigil_proto::request::{answerable_id, MAX_FIELD};
use sigil_proto::results::Token;
use sigil_proto::{
    from_cbor, to_cbor, write_frame, ErrorCode, Operation, WireRequest, WireResponse,
};

const SPEC: &str = include_str!("../../../docs/protocol.md");

/// Whether the spec says `sentence`, however its lines are wrapped.
fn spec_says(sentence: &str) -> bool {
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    words(SPEC).contains(&words(sentence))
}

/// The text of the first fenced block after `marker` in the spec.
fn block_after(marker: &str) -> &'static str {
    let start = SPEC
        .find(marker)
        .unwrap_or_else(|| panic!("spec lacks {marker:?}"));
    let rest = &SPEC[start..];
    let open = rest.find("```\n").unwrap() + 4;
    let close = open + rest[open..].find("```").unwrap();
    &rest[open..close]
}

fn encode(value: &Value) -> Vec<u8> {
    to_cbor(value).unwrap()
}

fn request(pairs: Vec<(Value, Value)>) -> Vec<u8> {
    encode(&Value::Map(pairs))
}

fn key(name: &str, value: impl Into<Value>) -> (Value, Value) {
    (Value::Text(name.into()), value.into())
}

fn decode(body: &[u8]) -> Result<Operation, String> {
    let wire: WireRequest = from_cbor(body).map_err(|e| e.0)?;
    Operation::from_wire(wire).map_err(|e| e.0)
}

#[test]
fn the_example_frame_is_the_documented_bytes() {
    let notation = block_after("`id_token` for alice in acme, request id 7");
    let hex = block_after("on the wire, the length");
    let documented: Vec<u8> = hex
        .split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect();

    // The diagnostic notation of this map is JSON.
    let wire: WireRequest = serde_json::from_str(notation).unwrap();
    assert_eq!(wire.id, 7);
    let mut frame = bytes::BytesMut::new();
    write_frame(&to_cbor(&wire).unwrap(), &mut frame).unwrap();
    assert_eq!(
        frame.as_ref(),
        documented.as_slice(),
        "the hex of the example is what a client encodes"
    );

    // The sentence around it gives the length prefix and the body's size.
    let body = frame.len() - 4;
    let prefix: String = frame[..4].iter().map(|b| format!("{b:02x} ")).collect();
    let sentence = format!("`{}` followed by the {body} bytes", prefix.trim_end());
    assert!(spec_says(&sentence), "spec lacks {sentence:?}");

    // "keys in the order shown": the notation's order is the bytes' order.
    let parts: Vec<&str> = notation.split('"').collect();
    let shown: Vec<&str> = (1..parts.len())
        .step_by(2)
        .filter(|&i| {
            parts
                .get(i + 1)
                .is_some_and(|after| after.trim_start().starts_with(':'))
        })
        .map(|i| parts[i])
        .collect();
    let decoded: Value = from_cbor(&documented[4..]).unwrap();
    let encoded: Vec<&str> = decoded
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_text().unwrap())
        .collect();
    assert_eq!(shown, encoded);
    assert!(
        Operation::from_wire(wire).is_ok(),
        "the example is a valid request"
    );
}

#[test]
fn control_characters_are_unicode_category_cc() {
    assert!(
        spec_says("Unicode general category Cc, that is U+0000–U+001F and U+007F–U+009F"),
        "the spec defines control characters as the code does"
    );
    let documented = |c: char| matches!(u32::from(c), 0x00..=0x1F | 0x7F..=0x9F);
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        assert_eq!(c.is_control(), documented(c), "U+{:04X}", u32::from(c));
    }
    let validate = |session: &str| {
        decode(&request(vec![
            key("id", 1),
            key("op", "session_validate"),
            key("tenant", "acme"),
            key("session", session),
        ]))
    };
    for refused in ['\u{0}', '\u{1F}', '\u{7F}', '\u{85}', '\u{9F}'] {
        let error = validate(&format!("a{refused}b")).unwrap_err();
        assert!(error.contains("control"), "{error}");
    }
    // Outside Cc, format and separator characters included: accepted.
    for accepted in [' ', '\u{A0}', '\u{AD}', '\u{200B}', '\u{202E}', '\u{2028}'] {
        assert!(validate(&format!("a{accepted}b")).is_ok(), "{accepted:?}");
    }
}

#[test]
fn field_rules_apply_to_the_keys_an_operation_reads() {
    let long = "x".repeat(MAX_FIELD + 1);
    // Keys of the table that health does not read: not checked, but typed.
    for unused in ["", long.as_str(), "a\u{0}b"] {
        let health = request(vec![
            key("id", 1),
            key("op", "health"),
            key("tenant", unused),
        ]);
        assert_eq!(decode(&health), Ok(Operation::Health), "{unused:?}");
    }
    let mistyped = request(vec![key("id", 1), key("op", "health"), key("tenant", 5)]);
    assert!(
        decode(&mistyped).is_err(),
        "a listed key has its type in every request"
    );
    // Unknown keys: any type, any size, unchecked.
    let nested = Value::Array(vec![Value::Map(vec![key(
        "k",
        Value::Bytes(vec![0; 1000]),
    )])]);
    let unknown = request(vec![
        key("id", 1),
        key("op", "health"),
        key("trace", long.as_str()),
        key("ctl", "\u{0}"),
        key("more", nested),
        key("flag", true),
    ]);
    assert_eq!(decode(&unknown), Ok(Operation::Health));
    // null counts as absent.
    let null = request(vec![
        key("id", 1),
        key("op", "health"),
        key("tenant", Value::Null),
    ]);
    assert_eq!(decode(&null), Ok(Operation::Health));
    // The keys an operation reads are checked: at most MAX_FIELD bytes.
    let id_token = |nonce: &str| {
        decode(&request(vec![
            key("id", 1),
            key("op", "id_token"),
            key("tenant", "acme"),
            key("user", "alice"),
            key("app", "app-es256"),
            key("session", "s"),
            key("nonce", nonce),
        ]))
    };
    assert!(id_token(&"n".repeat(MAX_FIELD)).is_ok());
    assert!(id_token(&long).unwrap_err().contains("exceeds"));
    assert!(id_token("").unwrap_err().contains("empty"));
    assert!(spec_says(&format!(
        "at most {MAX_FIELD} bytes, and hold no control character"
    )));
    // Keys other than text, a listed key twice: not a request.
    let integer_key = request(vec![
        key("id", 1),
        key("op", "health"),
        (Value::from(5), "x".into()),
    ]);
    assert!(decode(&integer_key).is_err());
    let twice = request(vec![
        key("id", 1),
        key("op", "health"),
        key("user", "a"),
        key("user", "b"),
    ]);
    assert!(decode(&twice).is_err());
}

#[test]
fn nesting_is_limited_to_sixteen_levels() {
    assert!(spec_says(
        "nested at most 16 levels deep (the request map counting as the first)"
    ));
    let with_depth = |levels: usize| {
        // The request map is level 1; the unknown key's value adds the rest.
        let mut value = Value::from(1);
        for _ in 1..levels {
            value = Value::Array(vec![value]);
        }
        request(vec![key("id", 1), key("op", "health"), key("deep", value)])
    };
    assert_eq!(decode(&with_depth(16)), Ok(Operation::Health));
    assert!(decode(&with_depth(17)).is_err());
    assert_eq!(
        answerable_id(&with_depth(17)),
        None,
        "too deep to read the id"
    );
}

#[test]
fn an_undecodable_request_is_answerable_when_its_id_can_be_read() {
    let readable = [
        // A listed key of the wrong type, a listed key twice, bad CBOR
        // inside a value the node never reaches: the id is still read.
        request(vec![key("id", 9), key("op", 5)]),
        request(vec![
            key("id", 9),
            key("op", "health"),
            key("user", "a"),
            key("user", "b"),
        ]),
        request(vec![key("op", Value::Array(vec![])), key("id", 9)]),
    ];
    for body in &readable {
        assert!(decode(body).is_err());
        assert_eq!(answerable_id(body).map(u64::from), Some(9), "{body:02x?}");
    }
    let mut trailing = request(vec![key("id", 9), key("op", "health")]);
    trailing.push(0);
    let unreadable = [
        request(vec![key("op", "health")]),                // no id
        request(vec![key("id", 0), key("op", 5)]),         // id 0
        request(vec![key("id", -1), key("op", "health")]), // not unsigned
        request(vec![key("id", "9"), key("op", "health")]),
        request(vec![key("id", 9), key("id", 10), key("op", 5)]),
        request(vec![key("id", 9), (Value::from(1), "x".into())]), // a key not text
        encode(&Value::Array(vec![9.into(), "health".into()])),
        vec![0xff, 0xff, 0xff],
        trailing,
    ];
    for body in &unreadable {
        assert_eq!(answerable_id(body), None, "{body:02x?}");
    }
    // A decodable request with id 0 is refused by the node, not answered.
    let zero: WireRequest = from_cbor(&request(vec![key("id", 0), key("op", "health")])).unwrap();
    assert_eq!(zero.id, 0);
}

#[test]
fn scopes_are_scope_tokens() {
    let access = |scope: Vec<Value>| {
        decode(&request(vec![
            key("id", 1),
            key("op", "access_token"),
            key("tenant", "acme"),
            key("user", "alice"),
            key("app", "app-es256"),
            key("session", "s"),
            key("scope", Value::Array(scope)),
        ]))
    };
    let accepted = ["openid", "read:all", "https://api.example/x", "!#[]~"];
    match access(accepted.iter().map(|s| Value::from(*s)).collect()) {
        Ok(Operation::AccessToken { scope, .. }) => assert_eq!(scope, accepted),
        other => panic!("{other:?}"),
    }
    for refused in ["openid admin", "a\"b", "a\\b", "é", "a\tb"] {
        let error = access(vec!["openid".into(), refused.into()]).unwrap_err();
        assert!(error.contains("scope"), "{refused:?}: {error}");
    }
    assert!(access(vec![]).is_ok(), "no scope at all");
    assert!(spec_says("`%x21 / %x23-5B / %x5D-7E`"));
}

#[test]
fn clients_ignore_answer_keys_they_do_not_know() {
    let answer = encode(&Value::Map(vec![
        key("id", 7),
        key("trace", "abc"),
        key(
            "result",
            Value::Map(vec![
                key("token", "t"),
                key("kid", "k"),
                key("alg", "EdDSA"),
                key("expires_at", 1),
                key("new_key", 1),
            ]),
        ),
    ]));
    let response: WireResponse<Token> = from_cbor(&answer).unwrap();
    assert_eq!(response.id, 7);
    assert_eq!(response.result.unwrap().token, "t");
    let refusal = encode(&Value::Map(vec![
        key("id", 7),
        key(
            "error",
            Value::Map(vec![
                key("code", "overloaded"),
                key("message", "m"),
                key("retry_after_ms", 5),
            ]),
        ),
    ]));
    let response: WireResponse = from_cbor(&refusal).unwrap();
    assert_eq!(response.error.unwrap().code, ErrorCode::Overloaded);
    assert!(spec_says("Clients must ignore keys they do not know, in the answer, in `error` and in any result map"));
}
