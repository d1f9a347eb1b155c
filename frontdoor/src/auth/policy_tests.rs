#![allow(clippy::unwrap_used)]
use super::*;

const OFFICE: &str = r#"
[[rule]]
name = "payroll-office"
apps = ["payroll"]
zones = ["10.0.0.0/8"]
action = "allow"
require_factor = true
session_lifetime = "1h"
idle_timeout = "10m"

[[rule]]
name = "payroll-closed"
apps = ["payroll"]
action = "deny"

[[rule]]
name = "office"
zones = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
action = "allow"
require_factor = false

[[rule]]
name = "admins"
groups = ["admins"]
action = "allow"
require_factor = true

[[rule]]
name = "wiki"
sps = ["wiki"]
action = "allow"
session_lifetime = "8h"
"#;

fn sign_on<'a>(
    ip: Option<&str>,
    app: Option<&'a str>,
    sp: Option<&'a str>,
    groups: &'a [String],
) -> SignOn<'a> {
    SignOn {
        client_ip: client_address(ip),
        app,
        sp,
        groups,
    }
}

#[test]
fn first_match_wins_over_zones_apps_sps_and_groups() {
    let policy = Policy::parse(OFFICE).unwrap();
    let none: Vec<String> = vec![];
    let admins = vec!["everyone".to_owned(), "admins".to_owned()];
    // Per-app override first: payroll from the office needs a factor, with
    // its lifetimes; from outside it is denied.
    assert_eq!(
        policy.evaluate(&sign_on(Some("10.1.2.3"), Some("payroll"), None, &none)),
        Decision::Allow {
            rule: Some("payroll-office"),
            factor: FactorDemand::Required,
            lifetime_s: Some(3600),
            idle_s: Some(600),
        }
    );
    assert_eq!(
        policy.evaluate(&sign_on(
            Some("198.51.100.1"),
            Some("payroll"),
            None,
            &admins
        )),
        Decision::Deny {
            rule: "payroll-closed"
        }
    );
    // No address: in no zone.
    assert_eq!(
        policy.evaluate(&sign_on(None, Some("payroll"), None, &none)),
        Decision::Deny {
            rule: "payroll-closed"
        }
    );
    // The office zone, v4, v6, a single address, a v4-mapped v6 address.
    for ip in ["10.200.0.1", "2001:db8::5", "192.0.2.7", "::ffff:10.0.0.9"] {
        assert!(
            matches!(
                policy.evaluate(&sign_on(Some(ip), None, None, &admins)),
                Decision::Allow {
                    rule: Some("office"),
                    factor: FactorDemand::NotRequired,
                    ..
                }
            ),
            "{ip}"
        );
    }
    // Outside: the group rule, else the SP rule, else the default.
    assert!(matches!(
        policy.evaluate(&sign_on(Some("192.0.2.8"), None, None, &admins)),
        Decision::Allow {
            rule: Some("admins"),
            factor: FactorDemand::Required,
            ..
        }
    ));
    assert_eq!(
        policy.evaluate(&sign_on(Some("192.0.2.8"), None, Some("wiki"), &none)),
        Decision::Allow {
            rule: Some("wiki"),
            factor: FactorDemand::IfEnrolled,
            lifetime_s: Some(8 * 3600),
            idle_s: None,
        }
    );
    // An app named like the SP is not the SP.
    assert_eq!(
        policy.evaluate(&sign_on(Some("192.0.2.8"), Some("wiki"), None, &none)),
        DEFAULT
    );
    assert_eq!(
        policy.evaluate(&sign_on(Some("not an address"), None, None, &none)),
        DEFAULT
    );
}

#[test]
fn no_rules_is_the_default_policy() {
    for text in ["", "# nothing\n", "rule = []\n"] {
        let policy = Policy::parse(text).unwrap();
        assert!(policy.is_empty());
        assert_eq!(
            policy.evaluate(&sign_on(Some("10.0.0.1"), None, None, &[])),
            DEFAULT
        );
    }
}

#[test]
fn bad_files_are_refused_naming_the_line_rule_or_field() {
    let refused = |text: &str| Policy::parse(text).unwrap_err().0;
    let unknown = refused("[[rule]]\naction = \"allow\"\nrequire_mfa = true\n");
    assert!(
        unknown.contains("line 3") && unknown.contains("require_mfa"),
        "{unknown}"
    );
    let top = refused("default = \"deny\"\n");
    assert!(top.contains("line 1") && top.contains("default"), "{top}");
    let action = refused("[[rule]]\naction = \"maybe\"\n");
    assert!(action.contains("line 2"), "{action}");
    let missing = refused("[[rule]]\nzones = [\"10.0.0.0/8\"]\n");
    assert!(missing.contains("action"), "{missing}");
    let cidr = refused("[[rule]]\nname = \"lan\"\nzones = [\"10.0.0.0/33\"]\naction = \"allow\"\n");
    assert!(
        cidr.contains("rule 1 (`lan`)") && cidr.contains("10.0.0.0/33"),
        "{cidr}"
    );
    let deny = refused("[[rule]]\naction = \"deny\"\nrequire_factor = true\n");
    assert!(deny.contains("deny rule"), "{deny}");
    let duration = refused("[[rule]]\naction = \"allow\"\nsession_lifetime = \"8 hours\"\n");
    assert!(
        duration.contains("session_lifetime") && duration.contains("8 hours"),
        "{duration}"
    );
    let short = refused("[[rule]]\naction = \"allow\"\nidle_timeout = \"5s\"\n");
    assert!(short.contains("outside 1m..30d"), "{short}");
    let order = refused(
        "[[rule]]\naction = \"allow\"\nsession_lifetime = \"10m\"\nidle_timeout = \"1h\"\n",
    );
    assert!(order.contains("longer than"), "{order}");
    let twice = refused(
        "[[rule]]\nname = \"a\"\naction = \"deny\"\n[[rule]]\nname = \"a\"\naction = \"deny\"\n",
    );
    assert!(
        twice.contains("rule 2") && twice.contains("twice"),
        "{twice}"
    );
    let syntax = refused("[[rule]\n");
    assert!(syntax.contains("line 1"), "{syntax}");
    let long = "#".repeat(MAX_POLICY_BYTES + 1);
    assert!(refused(&long).contains("exceeds"));
    let many = "[[rule]]\naction = \"deny\"\n".repeat(MAX_RULES + 1);
    assert!(refused(&many).contains("more than"));
}

#[test]
fn references_list_each_name_once() {
    let policy = Policy::parse(OFFICE).unwrap();
    assert_eq!(
        policy.references(),
        vec![
            ("payroll-office", "app", "payroll"),
            ("admins", "group", "admins"),
            ("wiki", "sp", "wiki"),
        ]
    );
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("90s").unwrap(), 90);
    assert_eq!(parse_duration("15m").unwrap(), 900);
    assert_eq!(parse_duration("8h").unwrap(), 28_800);
    assert_eq!(parse_duration("1d").unwrap(), 86_400);
    for bad in [
        "",
        "m",
        "15",
        "-1m",
        "1.5h",
        "15 m",
        "1w",
        "99999999999999999999d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}
