//! The user directory: who may register and with which secret.
//!
//! A user has a plain password, or a precomputed HA1 per hash algorithm
//! (`H(username:realm:password)`, RFC 7616 §3.4.2), or both. A stored HA1
//! is filed under the non-session algorithm (`MD5`, `SHA-256`); the `-sess`
//! variants derive theirs from it. Secrets are never printed: `Debug`
//! redacts them, and nothing here logs.

use std::collections::HashMap;
use std::fmt;

use crate::digest::{ha1_from_password, DigestAlgorithm};

/// The secrets of one user.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    password: Option<String>,
    ha1: Vec<(DigestAlgorithm, String)>,
}

impl Credentials {
    /// Credentials from a plain password.
    pub fn password(password: impl Into<String>) -> Self {
        Credentials {
            password: Some(password.into()),
            ha1: Vec::new(),
        }
    }

    /// Adds a stored HA1 (hex) for `algorithm`'s hash; replaces an earlier one.
    pub fn with_ha1(mut self, algorithm: DigestAlgorithm, ha1_hex: impl Into<String>) -> Self {
        let base = algorithm.base();
        self.ha1.retain(|(a, _)| *a != base);
        self.ha1
            .push((base, ha1_hex.into().trim().to_ascii_lowercase()));
        self
    }

    /// The HA1 to check `algorithm` with, if these credentials allow it.
    pub fn ha1(&self, algorithm: DigestAlgorithm, username: &str, realm: &str) -> Option<String> {
        let base = algorithm.base();
        self.ha1
            .iter()
            .find(|(a, _)| *a == base)
            .map(|(_, h)| h.clone())
            .or_else(|| {
                self.password
                    .as_deref()
                    .map(|p| ha1_from_password(base, username, realm, p))
            })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "ha1",
                &self.ha1.iter().map(|(a, _)| a.token()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Username -> credentials. Usernames are case-sensitive, like the user
/// part of a SIP URI (RFC 3261 §19.1.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDirectory {
    users: HashMap<String, Credentials>,
}

impl UserDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a user.
    pub fn insert(&mut self, username: impl Into<String>, credentials: Credentials) {
        self.users.insert(username.into(), credentials);
    }

    /// Adds or replaces a user with a plain password.
    pub fn add_password(&mut self, username: impl Into<String>, password: impl Into<String>) {
        self.insert(username, Credentials::password(password));
    }

    /// Adds a stored HA1 to a user, creating the user if needed.
    pub fn add_ha1(
        &mut self,
        username: impl Into<String>,
        algorithm: DigestAlgorithm,
        ha1_hex: impl Into<String>,
    ) {
        let entry = self.users.entry(username.into()).or_default();
        *entry = std::mem::take(entry).with_ha1(algorithm, ha1_hex);
    }

    pub fn remove(&mut self, username: &str) -> Option<Credentials> {
        self.users.remove(username)
    }

    pub fn get(&self, username: &str) -> Option<&Credentials> {
        self.users.get(username)
    }

    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_ha1_wins_and_password_fills_in() {
        let c = Credentials::password("pw").with_ha1(DigestAlgorithm::Sha256Sess, "ABCD");
        assert_eq!(
            c.ha1(DigestAlgorithm::Sha256, "u", "r").as_deref(),
            Some("abcd")
        );
        assert_eq!(
            c.ha1(DigestAlgorithm::Md5, "u", "r"),
            Some(ha1_from_password(DigestAlgorithm::Md5, "u", "r", "pw"))
        );
        let only_md5 = Credentials::default().with_ha1(DigestAlgorithm::Md5, "00");
        assert_eq!(only_md5.ha1(DigestAlgorithm::Sha256, "u", "r"), None);
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::password("hunter2").with_ha1(DigestAlgorithm::Md5, "deadbeef");
        let text = format!("{c:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("deadbeef"),
            "{text}"
        );
    }
}
