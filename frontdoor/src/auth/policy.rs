//! Per-tenant sign-on policy (issue 18): a `policy.toml` of ordered rules,
//! parsed and checked once ([`Policy::parse`]), then evaluated for each
//! sign-in after the password matched ([`Policy::evaluate`]) in
//! microseconds from a node's cache (no I/O, no allocation on a match).
//!
//! A rule matches when every condition it names holds (a condition it does
//! not name holds always): `zones` (the client's address is in one of the
//! CIDRs; an absent or unparsable address is in none), `apps` / `sps` (the
//! sign-in targets one of them), `groups` (the user is in one of them).
//! The first rule that matches decides: `deny`, or `allow` with
//! `require_factor` (true: a factor, and `MFA_ENROLL` when the user has
//! none; false: the password suffices; unset: the default), and the
//! session's `session_lifetime` / `idle_timeout`. Per-app overrides are
//! rules that name `apps` or `sps`, placed before the general ones. No
//! rule matching (or no rules) is the default policy: a factor whenever
//! the user has an active one, the password alone otherwise, the tenant's
//! session lifetimes.
//!
//! Self-contained (std, serde, toml, ipnet): `benches/benches/policy.rs`
//! compiles this file as it is.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The most rules a policy may hold.
pub const MAX_RULES: usize = 256;
/// The most entries of one condition list.
pub const MAX_LIST: usize = 256;
/// The longest policy file, bytes.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The shortest session lifetime or idle timeout a rule may set, seconds.
pub const MIN_DURATION_S: u64 = 60;
/// The longest session lifetime or idle timeout a rule may set: 30 days.
pub const MAX_DURATION_S: u64 = 30 * 24 * 3600;

/// Why a policy file is refused: in words naming the line, rule or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The sign-in is refused (`forbidden`).
    Deny,
    /// The sign-in goes on, with the rule's factor demand and lifetimes.
    Allow,
}

/// A rule as written in `policy.toml` (`[[rule]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// A name for audit records and errors (default `rule N`, from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// CIDRs of the client's address (`10.0.0.0/8`, `2001:db8::/32`, or a
    /// single address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// OIDC app names the sign-in targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    /// SAML SP names the sign-in targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sps: Vec<String>,
    /// Group names, the user in any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `allow` or `deny`.
    pub action: Action,
    /// `allow` only: true, a factor is required; false, the password is
    /// enough; unset, the default (a factor when the user has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_factor: Option<bool>,
    /// `allow` only: the session's absolute lifetime (`8h`, `30m`, `1d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_lifetime: Option<String>,
    /// `allow` only: the session's idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

/// `policy.toml`: `[[rule]]` tables, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The rules, first match wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleFile>,
}

/// What a sign-in must prove beside the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorDemand {
    /// A factor when the user has an active one (the default policy).
    IfEnrolled,
    /// A factor: `MFA_ENROLL` when the user has none.
    Required,
    /// The password alone.
    NotRequired,
}

/// The outcome of evaluating a policy for one sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'p> {
    /// Refused by the rule named.
    Deny {
        /// The rule's name.
        rule: &'p str,
    },
    /// Allowed.
    Allow {
        /// The rule that matched (none: the default policy).
        rule: Option<&'p str>,
        /// The factor demand.
        factor: FactorDemand,
        /// The session's absolute lifetime, seconds (none: the tenant's).
        lifetime_s: Option<u64>,
        /// The session's idle timeout, seconds (none: the tenant's).
        idle_s: Option<u64>,
    },
}

/// The default decision (no rule matched).
pub const DEFAULT: Decision<'static> = Decision::Allow {
    rule: None,
    factor: FactorDemand::IfEnrolled,
    lifetime_s: None,
    idle_s: None,
};

/// What one sign-in is, for the policy.
#[derive(Debug, Clone, Copy)]
pub struct SignOn<'a> {
    /// The client's address, parsed (none: not given or not an address).
    pub client_ip: Option<IpAddr>,
    /// The target app, if any.
    pub app: Option<&'a str>,
    /// The target SP, if any.
    pub sp: Option<&'a str>,
    /// The user's groups.
    pub groups: &'a [String],
}

/// A rule, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    name: String,
    zones: Vec<IpNet>,
    apps: Vec<String>,
    sps: Vec<String>,
    groups: Vec<String>,
    decision: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deny,
    Allow {
        factor: FactorDemand,
        lifetime_s: Option<u64>,
        idle_s: Option<u64>,
    },
}

/// A tenant's policy, checked and ready to evaluate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    file: PolicyFile,
}

/// A duration as a policy or a command writes it: a whole number and a
/// unit, `s`, `m`, `h` or `d` (`90s`, `15m`, `8h`, `1d`). Seconds.
///
/// # Errors
/// [`PolicyError`] saying what is wrong.
pub fn parse_duration(text: &str) -> Result<u64, PolicyError> {
    let bad = || {
        PolicyError(format!(
            "`{text}` is not a duration: a whole number and a unit s, m, h or d (e.g. 15m, 8h)"
        ))
    };
    let text = text.trim();
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

fn names(what: &str, rule: &str, list: &[String]) -> Result<Vec<String>, PolicyError> {
    if list.len() > MAX_LIST {
        return Err(PolicyError(format!(
            "{rule}: `{what}` lists more than {MAX_LIST} entries"
        )));
    }
    for name in list {
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(PolicyError(format!(
                "{rule}: `{what}` holds an empty or malformed name"
            )));
        }
    }
    Ok(list.to_vec())
}

fn lifetime(rule: &str, field: &str, text: Option<&str>) -> Result<Option<u64>, PolicyError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let seconds =
        parse_duration(text).map_err(|e| PolicyError(format!("{rule}: `{field}`: {e}")))?;
    if !(MIN_DURATION_S..=MAX_DURATION_S).contains(&seconds) {
        return Err(PolicyError(format!(
            "{rule}: `{field}` = `{text}` is outside 1m..30d"
        )));
    }
    Ok(Some(seconds))
}

impl Policy {
    /// Parses and checks `text` (TOML). The names of apps, SPs and groups
    /// are not checked against the directory here ([`Policy::references`]
    /// lists them for the caller to).
    ///
    /// # Errors
    /// [`PolicyError`]: TOML syntax or an unknown key (with its line and
    /// column), a bad CIDR or duration, a deny rule with allow fields,
    /// too many rules, a file too long.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError(format!(
                "the policy file exceeds {MAX_POLICY_BYTES} bytes"
            )));
        }
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| PolicyError(format!("policy.toml: {}", e.to_string().trim_end())))?;
        if file.rules.len() > MAX_RULES {
            return Err(PolicyError(format!(
                "the policy has more than {MAX_RULES} rules"
            )));
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (index, written) in file.rules.iter().enumerate() {
            let name = match &written.name {
                Some(name) => {
                    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                        return Err(PolicyError(format!(
                            "rule {}: `name` must be 1 to 64 printable characters",
                            index + 1
                        )));
                    }
                    name.clone()
                }
                None => format!("rule {}", index + 1),
            };
            let at = format!("rule {} (`{name}`)", index + 1);
            if rules.iter().any(|r: &Rule| r.name == name) {
                return Err(PolicyError(format!("{at}: the name is used twice")));
            }
            if written.zones.len() > MAX_LIST {
                return Err(PolicyError(format!(
                    "{at}: `zones` lists more than {MAX_LIST} entries"
                )));
            }
            let zones = written
                .zones
                .iter()
                .map(|zone| {
                    zone.parse::<IpNet>()
                        .or_else(|_| zone.parse::<IpAddr>().map(IpNet::from))
                        .map(|net| net.trunc())
                        .map_err(|_| {
                            PolicyError(format!(
                                "{at}: `zones`: `{zone}` is not a CIDR (e.g. 10.0.0.0/8, 2001:db8::/32) or an address"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let decision = match written.action {
                Action::Deny => {
                    if written.require_factor.is_some()
                        || written.session_lifetime.is_some()
                        || written.idle_timeout.is_some()
                    {
                        return Err(PolicyError(format!(
                            "{at}: a deny rule takes no `require_factor`, `session_lifetime` or `idle_timeout`"
                        )));
                    }
                    Kind::Deny
                }
                Action::Allow => {
                    let lifetime_s =
                        lifetime(&at, "session_lifetime", written.session_lifetime.as_deref())?;
                    let idle_s = lifetime(&at, "idle_timeout", written.idle_timeout.as_deref())?;
                    if let (Some(life), Some(idle)) = (lifetime_s, idle_s) {
                        if idle > life {
                            return Err(PolicyError(format!(
                                "{at}: `idle_timeout` is longer than `session_lifetime`"
                            )));
                        }
                    }
                    Kind::Allow {
                        factor: match written.require_factor {
                            None => FactorDemand::IfEnrolled,
                            Some(true) => FactorDemand::Required,
                            Some(false) => FactorDemand::NotRequired,
                        },
                        lifetime_s,
                        idle_s,
                    }
                }
            };
            rules.push(Rule {
                zones,
                apps: names("apps", &at, &written.apps)?,
                sps: names("sps", &at, &written.sps)?,
                groups: names("groups", &at, &written.groups)?,
                decision,
                name,
            });
        }
        Ok(Policy { rules, file })
    }

    /// Whether it has no rules (the default policy).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules as written (for `policy_show`).
    pub fn file(&self) -> &PolicyFile {
        &self.file
    }

    /// Every app, SP and group the rules name, each with the rule that
    /// names it first: `(rule, kind, name)`, kind `app`, `sp` or `group`.
    pub fn references(&self) -> Vec<(&str, &'static str, &str)> {
        let mut out = Vec::new();
        for rule in &self.rules {
            for (kind, list) in [
                ("app", &rule.apps),
                ("sp", &rule.sps),
                ("group", &rule.groups),
            ] {
                for name in list {
                    if !out
                        .iter()
                        .any(|(_, k, n)| *k == kind && *n == name.as_str())
                    {
                        out.push((rule.name.as_str(), kind, name.as_str()));
                    }
                }
            }
        }
        out
    }

    /// The decision for `sign_on`: the first rule that matches, or the
    /// default.
    pub fn evaluate(&self, sign_on: &SignOn<'_>) -> Decision<'_> {
        for rule in &self.rules {
            if !rule.matches(sign_on) {
                continue;
            }
            return match rule.decision {
                Kind::Deny => Decision::Deny { rule: &rule.name },
                Kind::Allow {
                    factor,
                    lifetime_s,
                    idle_s,
                } => Decision::Allow {
                    rule: Some(&rule.name),
                    factor,
                    lifetime_s,
                    idle_s,
                },
            };
        }
        DEFAULT
    }
}

impl Rule {
    fn matches(&self, s: &SignOn<'_>) -> bool {
        let in_zone = || {
            s.client_ip
                .is_some_and(|ip| self.zones.iter().any(|net| net.contains(&ip)))
        };
        let named = |list: &[String], target: Option<&str>| {
            target.is_some_and(|t| list.iter().any(|name| name == t))
        };
        (self.zones.is_empty() || in_zone())
            && (self.apps.is_empty() && self.sps.is_empty()
                || named(&self.apps, s.app)
                || named(&self.sps, s.sp))
            && (self.groups.is_empty() || s.groups.iter().any(|g| self.groups.contains(g)))
    }
}

/// The client's address as the policy sees it: an IPv4 or IPv6 address
/// (an IPv4-mapped IPv6 address counts as IPv4); anything else is none.
pub fn client_address(client_ip: Option<&str>) -> Option<IpAddr> {
    let ip: IpAddr = client_ip?.trim().parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
