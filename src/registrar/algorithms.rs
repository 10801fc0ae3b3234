//! Which digest algorithms a request is challenged with (RFC 8760 §2.4).
//!
//! Owns the choice, per request, of the `algorithm=` values a 401 or 407
//! offers and a response may use: the user's own list if the configuration
//! gives one, else the list of the first `User-Agent` rule that matches,
//! else the profile's. It does not mint nonces nor check digests (that is
//! `auth.rs`).
//!
//! Why a choice per request: RFC 8760 lets a server send one challenge per
//! algorithm and the client take the first it supports, but real phones
//! differ. baresip 1.0 (libre) answers a 401 carrying two challenges with
//! "Function not implemented" and never registers; SIPp 3.6 computes MD5
//! only. So the shipped default offers MD5 alone, and SHA-256 is given to
//! the users or phone models known to support it.
//!
//! A per-user list makes the challenge for that user differ from the one an
//! unknown user gets, which tells a prober the user exists; `User-Agent`
//! rules do not. The README says so where it documents the setting.

use std::collections::HashMap;

use regex::Regex;

use crate::digest::DigestAlgorithm;

/// The algorithms offered by default, per user and per `User-Agent` pattern.
#[derive(Debug, Clone)]
pub struct AlgorithmPolicy {
    default: Vec<DigestAlgorithm>,
    per_user: HashMap<String, Vec<DigestAlgorithm>>,
    per_agent: Vec<(Regex, Vec<DigestAlgorithm>)>,
}

impl AlgorithmPolicy {
    /// Offers `default` (most preferred first) to every request; an empty
    /// list means MD5, the one every digest client computes.
    pub fn new(default: Vec<DigestAlgorithm>) -> Self {
        AlgorithmPolicy {
            default: non_empty(default),
            per_user: HashMap::new(),
            per_agent: Vec::new(),
        }
    }

    /// `user` is offered `algorithms` whatever its phone.
    pub fn with_user(mut self, user: impl Into<String>, algorithms: Vec<DigestAlgorithm>) -> Self {
        self.per_user.insert(user.into(), non_empty(algorithms));
        self
    }

    /// A phone whose `User-Agent` matches `pattern` is offered `algorithms`
    /// (rules are tried in the order they were added; the first match wins).
    pub fn with_user_agent(mut self, pattern: Regex, algorithms: Vec<DigestAlgorithm>) -> Self {
        self.per_agent.push((pattern, non_empty(algorithms)));
        self
    }

    /// The algorithms for a request from `user` (the credentials' username,
    /// else the To/From user) sent by `user_agent`, most preferred first.
    pub fn offered(&self, user: Option<&str>, user_agent: Option<&str>) -> &[DigestAlgorithm] {
        if let Some(list) = user.and_then(|u| self.per_user.get(u)) {
            return list;
        }
        if let Some(ua) = user_agent {
            if let Some((_, list)) = self.per_agent.iter().find(|(re, _)| re.is_match(ua)) {
                return list;
            }
        }
        &self.default
    }

    /// The profile's default list.
    pub fn default_list(&self) -> &[DigestAlgorithm] {
        &self.default
    }
}

impl Default for AlgorithmPolicy {
    fn default() -> Self {
        AlgorithmPolicy::new(Vec::new())
    }
}

fn non_empty(list: Vec<DigestAlgorithm>) -> Vec<DigestAlgorithm> {
    if list.is_empty() {
        vec![DigestAlgorithm::Md5]
    } else {
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DigestAlgorithm::{Md5, Sha256};

    fn policy() -> AlgorithmPolicy {
        AlgorithmPolicy::new(vec![Md5])
            .with_user("1001", vec![Sha256])
            .with_user_agent(Regex::new("^PJSIP").unwrap(), vec![Sha256, Md5])
            .with_user_agent(Regex::new("PJSIP|Yealink").unwrap(), vec![Sha256])
    }

    #[test]
    fn user_then_first_matching_agent_then_default() {
        let p = policy();
        // The user's own list wins over its phone's.
        assert_eq!(p.offered(Some("1001"), Some("PJSIP 2.15")), [Sha256]);
        // The first rule that matches, not the last.
        assert_eq!(p.offered(Some("1002"), Some("PJSIP 2.15")), [Sha256, Md5]);
        assert_eq!(p.offered(Some("1002"), Some("Yealink T46")), [Sha256]);
        assert_eq!(p.offered(Some("1002"), Some("baresip v1.0.0")), [Md5]);
        assert_eq!(p.offered(None, None), [Md5]);
        assert_eq!(p.offered(Some("9999"), None), [Md5]);
    }

    #[test]
    fn an_empty_list_means_md5() {
        let p = AlgorithmPolicy::new(vec![]).with_user("1001", vec![]);
        assert_eq!(p.offered(None, None), [Md5]);
        assert_eq!(p.offered(Some("1001"), None), [Md5]);
    }
}
