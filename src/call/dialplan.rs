//! The dial plan: number patterns to destinations, compiled once.
//!
//! Rules are tried in order; the first whose pattern matches the whole
//! dialled number (and whose `from` list admits the profile the call entered
//! on) decides. `number` rewrites what is sent on with `$1`-style captures.
//! The patterns were compiled once already by `check-config`, so a failure
//! here cannot happen with a validated configuration; it is still reported
//! rather than unwrapped.

use regex::Regex;

use crate::config::{Config, RouteTarget};
use crate::net::ProfileId;

/// Where a dialled number goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The registered contacts of `user` on the registrar `profile`.
    User { profile: ProfileId, user: String },
    /// Out through trunk peer `peer` (index in `profile`'s peers) as `number`.
    Gateway {
        profile: ProfileId,
        peer: usize,
        number: String,
    },
}

#[derive(Debug)]
struct Rule {
    pattern: Regex,
    target: Target,
    number: String,
    from: Vec<ProfileId>,
}

#[derive(Debug)]
enum Target {
    User(ProfileId),
    Gateway(ProfileId, usize),
}

#[derive(Debug, Default)]
pub struct DialPlan {
    rules: Vec<Rule>,
}

impl DialPlan {
    /// Compiles the configuration's rules; a rule that cannot be compiled is
    /// skipped with a warning (validation rejects such configurations).
    pub fn new(config: &Config) -> Self {
        let mut rules = Vec::new();
        for (i, r) in config.dialplan.iter().enumerate() {
            let anchored = format!("^(?:{})$", r.pattern);
            let Ok(pattern) = Regex::new(&anchored) else {
                tracing::warn!(rule = i, "dial plan pattern does not compile; rule skipped");
                continue;
            };
            let target = match r.to {
                RouteTarget::User => {
                    let profile = match &r.profile {
                        Some(name) => config.profile_index(name),
                        None => config.profiles.iter().position(|p| p.profile.registrar),
                    };
                    match profile {
                        Some(p) => Target::User(ProfileId(p)),
                        None => continue,
                    }
                }
                RouteTarget::Gateway => {
                    let Some((p, _)) = r.gateway.as_deref().and_then(|g| config.peer(g)) else {
                        continue;
                    };
                    let peer = config.profiles[p]
                        .profile
                        .peers
                        .iter()
                        .position(|x| Some(&x.name) == r.gateway.as_ref())
                        .unwrap_or(0);
                    Target::Gateway(ProfileId(p), peer)
                }
            };
            let from = r
                .from
                .iter()
                .filter_map(|n| config.profile_index(n).map(ProfileId))
                .collect();
            rules.push(Rule {
                pattern,
                target,
                number: r.number.clone().unwrap_or_else(|| "$0".into()),
                from,
            });
        }
        DialPlan { rules }
    }

    /// Routes `number` dialled from a call entering on `entered` (`None`:
    /// placed by the switch itself, every rule applies).
    pub fn route(&self, number: &str, entered: Option<ProfileId>) -> Option<Destination> {
        self.rules.iter().find_map(|r| {
            if let Some(p) = entered {
                if !r.from.is_empty() && !r.from.contains(&p) {
                    return None;
                }
            }
            let caps = r.pattern.captures(number)?;
            let mut out = String::new();
            caps.expand(&r.number, &mut out);
            Some(match r.target {
                Target::User(profile) => Destination::User { profile, user: out },
                Target::Gateway(profile, peer) => Destination::Gateway {
                    profile,
                    peer,
                    number: out,
                },
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(extra: &str) -> DialPlan {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.toml");
        std::fs::write(
            &main,
            format!(
                r#"
[profiles.internal]
registrar = true
listen = [{{ transport = "udp", address = "127.0.0.1:0" }}]
users = [{{ username = "1001", password = "x" }}]
[profiles.external]
listen = [{{ transport = "udp", address = "127.0.0.1:0" }}]
peers = [{{ name = "a", address = "127.0.0.1:1", acl = [] }}, {{ name = "trunk", address = "127.0.0.1:5090" }}]
{extra}
"#
            ),
        )
        .unwrap();
        DialPlan::new(&crate::config::load(&main).unwrap())
    }

    #[test]
    fn first_matching_rule_wins_and_captures_rewrite() {
        let p = plan(
            r#"
[[dialplan]]
match = "1[0-9]{3}"
to = "user"
[[dialplan]]
match = "\\+?(00)?([0-9]{5,15})"
to = "gateway"
gateway = "trunk"
number = "+$2"
from = ["internal"]
"#,
        );
        // Profiles of one file load in name order: external (0), internal (1).
        let (external, internal) = (ProfileId(0), ProfileId(1));
        assert_eq!(
            p.route("1001", Some(internal)),
            Some(Destination::User {
                profile: internal,
                user: "1001".into()
            })
        );
        assert_eq!(
            p.route("0015551234", Some(internal)),
            Some(Destination::Gateway {
                profile: external,
                peer: 1,
                number: "+15551234".into()
            })
        );
        // `from` limits the gateway rule to calls entering on internal.
        assert_eq!(p.route("15551234", Some(external)), None);
        // The switch's own calls use every rule.
        assert!(p.route("15551234", None).is_some());
        // Patterns match the whole number.
        assert_eq!(p.route("10011", Some(internal)).map(|_| ()), Some(()));
        assert_eq!(p.route("x1001", Some(internal)), None);
        assert_eq!(p.route("", Some(internal)), None);
    }
}
