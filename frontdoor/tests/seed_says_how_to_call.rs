//! `sigil directory seed` says what it made and how to call it, and what
//! it says works: the caller it tells how to mint may act for a seeded
//! tenant, and the call it suggests answers with a token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{free_port, sigil, Serve};

/// The arguments of a printed `sigil ...` line, its shell quoting removed.
fn words(line: &str) -> Vec<String> {
    let mut words: Vec<String> = line
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_owned())
        .collect();
    assert_eq!(words.remove(0), "sigil", "{line}");
    words
}

#[test]
fn the_seed_summary_names_tenants_users_apps_and_a_call_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    Serve::start(root, free_port(), free_port()).stop();
    let (ok, seeded) = sigil(
        root,
        &["directory", "seed", "--tenants", "3", "--users", "30"],
    );
    assert!(ok, "{seeded}");
    assert_eq!(seeded["tenants"], 3, "{seeded}");
    assert_eq!(seeded["tenant_names"], "seed-1 … seed-3 (largest first)");
    assert_eq!(seeded["largest"][0]["tenant"], "seed-1");
    assert!(seeded["apps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|app| app["name"] == "app-eddsa"));
    assert!(seeded["user_names"]
        .as_str()
        .unwrap()
        .starts_with("user1 … user"));

    // The caller it tells how to mint, then the call it suggests.
    let make_caller = words(seeded["make_caller"].as_str().unwrap());
    let make_caller: Vec<&str> = make_caller.iter().map(String::as_str).collect();
    let (ok, minted) = sigil(root, &make_caller);
    assert!(ok, "{minted}");
    let serve = Serve::start(root, free_port(), free_port());
    let call = words(seeded["try"].as_str().unwrap());
    let call: Vec<&str> = call.iter().map(String::as_str).collect();
    let (ok, answer) = sigil(root, &call);
    serve.stop();
    assert!(ok, "{answer}");
    let result = answer
        .as_array()
        .and_then(|steps| steps.last())
        .unwrap_or(&answer)["result"]
        .clone();
    assert!(result["token"].is_string(), "{answer}");
    assert!(result["expires_at_rfc3339"].is_string(), "{answer}");
}
