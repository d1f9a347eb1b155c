//! `sigil directory seed` says what it made and how to call it, and what
//! it says works: the caller it tells how to mint may act for a seeded
//! tenant, and the call it suggests answers with a token; the seeded users
//! have the password it names, which `sigil-perf --mix authenticate` signs
//! in with (issue 18).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

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
    let sign_ins = sign_in_loads(root, &seeded);
    serve.stop();
    sign_ins();
    assert!(ok, "{answer}");
    let result = answer
        .as_array()
        .and_then(|steps| steps.last())
        .unwrap_or(&answer)["result"]
        .clone();
    assert!(result["token"].is_string(), "{answer}");
    assert!(result["expires_at_rfc3339"].is_string(), "{answer}");
}

/// `sigil-perf ARGS` in `root`: its JSON report (written to `json`).
fn perf_report(root: &Path, args: &[String], json: &Path) -> serde_json::Value {
    let output = std::process::Command::new(common::cluster::Nodes::perf())
        .current_dir(root)
        .args(args)
        .args(["--threads", "1", "--connections", "1", "--json"])
        .arg(json)
        .arg("--charts")
        .arg(root.join("charts"))
        .output()
        .unwrap();
    let text = format!(
        "{args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

/// Runs, against the node serving `root`, the `sigil-perf --mix
/// authenticate` load the summary prints (2 s instead of 30) and the same
/// as a wrong-password flood; returns the checks of their reports, to run
/// once the node is stopped.
fn sign_in_loads(root: &Path, seeded: &serde_json::Value) -> impl FnOnce() {
    assert!(
        seeded["passwords"]
            .as_str()
            .unwrap()
            .contains("\"sigil-seed-load-test\""),
        "{seeded}"
    );
    let printed = seeded["auth_load"].as_str().unwrap();
    assert!(printed.contains(" --mix authenticate "), "{printed}");
    let mut args: Vec<String> = printed
        .replace("--duration 30s", "--duration 2s")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(args.remove(0), "sigil-perf", "{printed}");
    let right = perf_report(root, &args, &root.join("authenticate.json"));
    let mix = args.iter().position(|a| a == "--mix").unwrap() + 1;
    args[mix] = "authenticate-wrong".into();
    let wrong = perf_report(root, &args, &root.join("authenticate-wrong.json"));
    move || {
        // Real sign-ins: sessions made for the seeded users' password.
        assert_eq!(right["mix"], "authenticate", "{right}");
        assert!(right["sent"].as_u64().unwrap() >= 30, "{right}");
        assert!(right["ok"].as_u64().unwrap() > 0, "{right}");
        let errors = right["errors"].as_object().unwrap();
        assert!(
            errors.keys().all(|code| code == "overloaded"),
            "only a full hashing queue may refuse a right password: {right}"
        );
        // Wrong passwords: refused as invalid credentials, never a session.
        assert_eq!(wrong["ok"], 0, "{wrong}");
        let refused = wrong["errors"]["invalid_credentials"].as_u64().unwrap_or(0);
        assert!(refused > 0, "{wrong}");
        let errors = wrong["errors"].as_object().unwrap();
        assert!(
            errors
                .keys()
                .all(|code| code == "invalid_credentials" || code == "overloaded"),
            "{wrong}"
        );
        assert_eq!(
            errors.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
            wrong["sent"].as_u64().unwrap(),
            "every wrong password answered: {wrong}"
        );
    }
}
