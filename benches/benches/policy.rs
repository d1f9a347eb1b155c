//! Sign-on policy evaluation (issue 18): a 20-rule policy, as `policy set`
//! stores it, evaluated for one sign-in the way `authenticate` does after
//! the password matched (from the node's parsed copy: no I/O). Three
//! sign-ins: one matching the first rule, one matching the last, one
//! matching none (every rule tried, then the default). The evaluator is
//! frontdoor's own `auth/policy.rs`, compiled here as it is (it depends on
//! std, serde, toml and ipnet only), so the bench does not build the
//! whole `sigil` crate.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

#[path = "../../frontdoor/src/auth/policy.rs"]
mod policy;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use policy::{client_address, Policy, SignOn};

/// 20 rules: per-app overrides with zones, SP rules, group rules, and a
/// catch-all-free tail, each with a few CIDRs (v4 and v6).
fn twenty_rules() -> String {
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!("[[rule]]\nname = \"r{i}\"\n"));
        text.push_str(&format!(
            "zones = [\"10.{i}.0.0/16\", \"172.16.{i}.0/24\", \"2001:db8:{i:x}::/48\"]\n"
        ));
        match i % 4 {
            0 => text.push_str(&format!("apps = [\"app-{i}\", \"portal-{i}\"]\n")),
            1 => text.push_str(&format!("sps = [\"sp-{i}\"]\n")),
            2 => text.push_str(&format!("groups = [\"team-{i}\", \"ops-{i}\"]\n")),
            _ => {}
        }
        if i % 5 == 4 {
            text.push_str("action = \"deny\"\n\n");
        } else {
            text.push_str(
                "action = \"allow\"\nrequire_factor = true\nsession_lifetime = \"8h\"\n\n",
            );
        }
    }
    text
}

fn evaluate(c: &mut Criterion) {
    let policy = Policy::parse(&twenty_rules()).unwrap();
    let groups: Vec<String> = ["everyone", "engineering", "team-18", "ops-2"]
        .iter()
        .map(|g| (*g).to_owned())
        .collect();
    let first = SignOn {
        client_ip: client_address(Some("10.0.3.4")),
        app: Some("portal-0"),
        sp: None,
        groups: &groups,
    };
    let last = SignOn {
        client_ip: client_address(Some("2001:db8:13::1")),
        app: None,
        sp: None,
        groups: &groups,
    };
    let none = SignOn {
        client_ip: client_address(Some("198.51.100.7")),
        app: Some("app-8"),
        sp: None,
        groups: &groups,
    };
    assert!(matches!(
        policy.evaluate(&first),
        policy::Decision::Allow {
            rule: Some("r0"),
            ..
        }
    ));
    assert!(matches!(
        policy.evaluate(&last),
        policy::Decision::Deny { rule: "r19" }
    ));
    assert_eq!(policy.evaluate(&none), policy::DEFAULT);

    let mut group = c.benchmark_group("signon_policy_20_rules");
    group.throughput(Throughput::Elements(1));
    for (name, sign_on) in [
        ("first_rule", first),
        ("last_rule", last),
        ("no_match", none),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(policy.evaluate(black_box(&sign_on))))
        });
    }
    // With the address parsed per sign-in, as `authenticate` does.
    group.bench_function("no_match_parsing_client_ip", |b| {
        b.iter(|| {
            let sign_on = SignOn {
                client_ip: client_address(black_box(Some("198.51.100.7"))),
                app: Some("app-8"),
                sp: None,
                groups: &groups,
            };
            black_box(policy.evaluate(&sign_on))
        })
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
