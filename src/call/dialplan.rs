//! The dial plan: number patterns to destinations, compiled once.
//!
//! Rules are tried in order; the first whose pattern matches the whole
//! dialled number (and whose `from` list admits the profile the call entered
//! on) decides. `number` rewrites what is sent on with `$1`-style captures.
//! The patterns were compiled once already by `check-config`, so a failure
//! here cannot happen with a validated configuration; it is still reported
//! rather than unwrapped.
//!
//! A gateway rule names one peer (`gateway`) or several (`gateways`),
//! ordered as written or drawn per call by weight (`strategy =
//! "weighted"`, RFC 2782's selection): the route carries them all, in the
//! order the call tries them (see `gateways` for what skips or fails over).

use regex::Regex;

use crate::net::ProfileId;

/// Where a dialled number goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The registered contacts of `user` on the registrar `profile`.
    User { profile: ProfileId, user: String },
    /// Out through trunk peers (profile, index in its peers), tried in this
    /// order (never empty), as `number`.
    Gateway {
        gateways: Vec<(ProfileId, usize)>,
        number: String,
    },
}

#[derive(Debug)]
struct Rule {
    pattern: Regex,
    target: DialTarget,
    number: String,
    from: Vec<ProfileId>,
}

/// One rule of the dial plan as configured, its names resolved
/// (`Config::call_settings` builds them; `DialPlan::new` compiles them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRule {
    /// Matched against the whole dialled number.
    pub pattern: String,
    pub target: DialTarget,
    /// What is sent on, with `$1`-style captures (`$0`: the number as dialled).
    pub number: String,
    /// Only calls entering on these profiles use it (empty: every profile).
    pub from: Vec<ProfileId>,
}

/// Where a rule sends the calls it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// The registered contacts of the number's user on this registrar profile.
    User(ProfileId),
    /// Trunk peers (profile, index in its peers) as written, with their
    /// weights when drawn by weight.
    Gateway(Vec<(ProfileId, usize)>, Option<Vec<u32>>),
}

#[derive(Debug, Default)]
pub struct DialPlan {
    rules: Vec<Rule>,
}

impl DialPlan {
    /// Compiles the rules; a rule whose pattern does not compile is
    /// skipped with a warning (validation rejects such configurations).
    pub fn new(specs: &[DialRule]) -> Self {
        let mut rules = Vec::new();
        for (i, r) in specs.iter().enumerate() {
            let anchored = format!("^(?:{})$", r.pattern);
            let Ok(pattern) = Regex::new(&anchored) else {
                tracing::warn!(rule = i, "dial plan pattern does not compile; rule skipped");
                continue;
            };
            rules.push(Rule {
                pattern,
                target: r.target.clone(),
                number: r.number.clone(),
                from: r.from.clone(),
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
            Some(match &r.target {
                DialTarget::User(profile) => Destination::User {
                    profile: *profile,
                    user: out,
                },
                DialTarget::Gateway(gateways, None) => Destination::Gateway {
                    gateways: gateways.clone(),
                    number: out,
                },
                DialTarget::Gateway(gateways, Some(weights)) => Destination::Gateway {
                    gateways: weighted_order(gateways, weights, |total| {
                        rand::random_range(0..total)
                    }),
                    number: out,
                },
            })
        })
    }
}

/// RFC 2782's weighted selection, repeated: each pick draws among the
/// entries left with probability weight / (sum of weights left), so every
/// entry ends up in the order, heavier ones earlier more often. `draw(n)`
/// returns a number in `0..n` (random in use; fixed in tests).
pub fn weighted_order<T: Clone>(
    entries: &[T],
    weights: &[u32],
    mut draw: impl FnMut(u64) -> u64,
) -> Vec<T> {
    let mut left: Vec<(T, u64)> = entries
        .iter()
        .cloned()
        .zip(weights.iter().map(|w| u64::from((*w).max(1))))
        .collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|(_, w)| w).sum();
        let mut at = draw(total).min(total - 1);
        let i = left
            .iter()
            .position(|(_, w)| {
                if at < *w {
                    true
                } else {
                    at -= w;
                    false
                }
            })
            .unwrap_or(0);
        out.push(left.remove(i).0);
    }
    out
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
        DialPlan::new(
            &crate::config::load(&main)
                .unwrap()
                .call_settings()
                .dial_rules,
        )
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
                gateways: vec![(external, 1)],
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

    #[test]
    fn gateway_lists_keep_their_order_or_are_drawn_by_weight() {
        let p = plan(
            r#"
[[dialplan]]
match = "1[0-9]+"
to = "gateway"
gateways = ["trunk", "a"]
[[dialplan]]
match = "2[0-9]+"
to = "gateway"
gateways = ["a", "trunk"]
strategy = "weighted"
weights = [3, 1]
"#,
        );
        let external = ProfileId(0);
        let (a, trunk) = ((external, 0), (external, 1));
        for _ in 0..10 {
            assert_eq!(
                p.route("100", None),
                Some(Destination::Gateway {
                    gateways: vec![trunk, a],
                    number: "100".into()
                }),
                "ordered: as written, every time"
            );
        }
        // Weighted: both always present; `a` (weight 3) first about 3 times in 4.
        let mut a_first = 0;
        for _ in 0..4000 {
            let Some(Destination::Gateway { gateways, .. }) = p.route("200", None) else {
                panic!("no route");
            };
            assert_eq!(gateways.len(), 2);
            assert_ne!(gateways[0], gateways[1]);
            a_first += usize::from(gateways[0] == a);
        }
        assert!(
            (2800..=3200).contains(&a_first),
            "a first {a_first} times of 4000"
        );
    }

    #[test]
    fn weighted_order_follows_the_draw() {
        let e = ["a", "b", "c"];
        let w = [1, 2, 7];
        // Draw 0 always takes the first entry left.
        assert_eq!(weighted_order(&e, &w, |_| 0), ["a", "b", "c"]);
        // The last unit of the total takes the last entry left.
        assert_eq!(weighted_order(&e, &w, |t| t - 1), ["c", "b", "a"]);
        // 1 of 10 falls in b's range (1..3); then 0 of 8 is a.
        let mut draws = [1u64, 0, 0].into_iter();
        assert_eq!(
            weighted_order(&e, &w, |_| draws.next().unwrap()),
            ["b", "a", "c"]
        );
        // A draw out of range is clamped, never a panic.
        assert_eq!(weighted_order(&e, &w, |_| 99), ["c", "b", "a"]);
        assert!(weighted_order::<&str>(&[], &[], |_| 0).is_empty());
    }
}
