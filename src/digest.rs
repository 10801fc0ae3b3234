//! HTTP digest arithmetic for SIP (RFC 8760, which brings RFC 7616 to SIP).
//!
//! This module owns the algorithm names, the parsing of an `Authorization`
//! header's `Digest` parameters, and the computation of HA1, HA2 and the
//! request-digest (RFC 7616 §3.4.1 – §3.4.3). It keeps no state and knows
//! nothing about nonces' meaning (see `registrar/nonce.rs`) or users (see
//! `registrar/users.rs`).
//!
//! Below both of its users: the registrar verifies phones' credentials with
//! it (server side, RFC 3261 §22.4) and the call layer answers trunks'
//! challenges with it (client side, §22.2, `call/digest.rs`), so neither
//! reaches into the other for one implementation of RFC 7616.
//!
//! Supported: MD5, MD5-sess, SHA-256, SHA-256-sess; `qop=auth`, and for MD5
//! the RFC 2069 form without qop that older SIP phones still send
//! (RFC 3261 §22.4 keeps it for backwards compatibility). `auth-int` and
//! `userhash` are not supported: such credentials are answered with a fresh
//! challenge by the caller.
//!
//! The parameters are read with a small tokenizer of our own rather than the
//! typed rsip header, because the typed header reads `nc` as a `u8`, which
//! fails from the 256th request on one nonce; `nc` here is the 32-bit hex
//! counter of RFC 7616 §3.4.

use std::fmt;

use md5::{Digest as _, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A digest algorithm (RFC 7616 §3.3 `algorithm`, RFC 8760 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl DigestAlgorithm {
    /// The token as it appears in `algorithm=`.
    pub fn token(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Md5Sess => "MD5-sess",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Reads an `algorithm=` token (case-insensitive).
    pub fn from_token(token: &str) -> Option<Self> {
        let t = token.trim();
        [
            DigestAlgorithm::Md5,
            DigestAlgorithm::Md5Sess,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.token().eq_ignore_ascii_case(t))
    }

    /// `-sess` variants mix the nonce and cnonce into HA1 (RFC 7616 §3.4.2).
    pub fn is_session(self) -> bool {
        matches!(self, DigestAlgorithm::Md5Sess | DigestAlgorithm::Sha256Sess)
    }

    /// The non-session algorithm with the same hash: the key a stored HA1
    /// is filed under, since `-sess` HA1 is derived from it.
    pub fn base(self) -> Self {
        match self {
            DigestAlgorithm::Md5 | DigestAlgorithm::Md5Sess => DigestAlgorithm::Md5,
            DigestAlgorithm::Sha256 | DigestAlgorithm::Sha256Sess => DigestAlgorithm::Sha256,
        }
    }

    /// Lower-case hex of the algorithm's hash of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self.base() {
            DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data)),
            _ => hex::encode(Md5::digest(data)),
        }
    }

    /// Length of a hex digest for this algorithm.
    pub fn hex_len(self) -> usize {
        match self.base() {
            DigestAlgorithm::Sha256 => 64,
            _ => 32,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// Why an `Authorization` value could not be read as digest credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    #[error("authorization scheme is not Digest")]
    NotDigest,
    #[error("malformed digest parameter list")]
    Syntax,
    #[error("missing digest parameter {0}")]
    Missing(&'static str),
    #[error("malformed nc")]
    BadNonceCount,
}

/// The `Digest` parameters of one `Authorization` header (RFC 7616 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    /// The request-digest as sent (hex, any case).
    pub response: String,
    /// The `algorithm=` token as sent; `None` means MD5 (RFC 7616 §3.3).
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    /// The `qop` token as sent (`auth`, `auth-int`), `None` for RFC 2069 style.
    pub qop: Option<String>,
    /// The `nc` text exactly as sent: it is hashed verbatim.
    pub nc_raw: Option<String>,
    /// `nc` as a number (8 hex digits, a 32-bit counter).
    pub nc: Option<u32>,
}

/// The parameters of a `Digest` header value (credentials or challenge).
fn digest_params(value: &str) -> Result<&str, DigestParseError> {
    let (scheme, rest) = value
        .trim()
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or(DigestParseError::NotDigest)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestParseError::NotDigest);
    }
    Ok(rest)
}

impl DigestCredentials {
    /// Parses the value of an `Authorization` header.
    pub fn parse(value: &str) -> Result<Self, DigestParseError> {
        let rest = digest_params(value)?;
        let mut creds = DigestCredentials {
            username: String::new(),
            realm: String::new(),
            nonce: String::new(),
            uri: String::new(),
            response: String::new(),
            algorithm: None,
            cnonce: None,
            opaque: None,
            qop: None,
            nc_raw: None,
            nc: None,
        };
        let (mut has_user, mut has_realm, mut has_nonce, mut has_uri, mut has_resp) =
            (false, false, false, false, false);
        for (name, val) in tokenize_params(rest)? {
            match name.to_ascii_lowercase().as_str() {
                "username" => (creds.username, has_user) = (val, true),
                "realm" => (creds.realm, has_realm) = (val, true),
                "nonce" => (creds.nonce, has_nonce) = (val, true),
                "uri" => (creds.uri, has_uri) = (val, true),
                "response" => (creds.response, has_resp) = (val, true),
                "algorithm" => creds.algorithm = Some(val),
                "cnonce" => creds.cnonce = Some(val),
                "opaque" => creds.opaque = Some(val),
                "qop" => creds.qop = Some(val),
                "nc" => {
                    let ok = !val.is_empty()
                        && val.len() <= 8
                        && val.bytes().all(|b| b.is_ascii_hexdigit());
                    if !ok {
                        return Err(DigestParseError::BadNonceCount);
                    }
                    creds.nc = u32::from_str_radix(&val, 16).ok();
                    creds.nc_raw = Some(val);
                }
                _ => {} // RFC 7616 §3.4: unknown parameters are ignored.
            }
        }
        for (present, name) in [
            (has_user, "username"),
            (has_realm, "realm"),
            (has_nonce, "nonce"),
            (has_uri, "uri"),
            (has_resp, "response"),
        ] {
            if !present {
                return Err(DigestParseError::Missing(name));
            }
        }
        Ok(creds)
    }
}

/// Splits `name=value, name="quoted \"value\""` into pairs, unquoting values.
fn tokenize_params(input: &str) -> Result<Vec<(String, String)>, DigestParseError> {
    let bytes = input.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    // Every stop below is at an ASCII byte or the end, so slices taken
    // between stops fall on character boundaries; `text` still checks.
    let text = |from: usize, to: usize| input.get(from..to).ok_or(DigestParseError::Syntax);
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while at(*i).is_some_and(|b| b.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        while at(i) == Some(b',') {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while at(i).is_some_and(|b| b != b'=' && b != b',') {
            i += 1;
        }
        let name = text(start, i)?.trim();
        if name.is_empty() || at(i) != Some(b'=') {
            return Err(DigestParseError::Syntax);
        }
        i += 1;
        skip_ws(&mut i);
        let value = if at(i) == Some(b'"') {
            i += 1;
            let mut v = String::new();
            let mut closed = false;
            let mut chars = text(i, bytes.len())?.char_indices();
            while let Some((off, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        i += off + 1;
                        closed = true;
                        break;
                    }
                    _ => v.push(c),
                }
            }
            if !closed {
                return Err(DigestParseError::Syntax);
            }
            v
        } else {
            let start = i;
            while at(i).is_some_and(|b| b != b',') {
                i += 1;
            }
            text(start, i)?.trim().to_string()
        };
        out.push((name.to_string(), value));
        skip_ws(&mut i);
        if at(i).is_some_and(|b| b != b',') {
            return Err(DigestParseError::Syntax);
        }
    }
    Ok(out)
}

/// The `Digest` challenge of a `WWW-Authenticate` / `Proxy-Authenticate`
/// header (RFC 7616 §3.3), as a client answering it needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Option<String>,
    pub opaque: Option<String>,
    /// The qop options offered (`auth`, `auth-int`); empty for RFC 2069 style.
    pub qop: Vec<String>,
    pub stale: bool,
}

impl DigestChallenge {
    pub fn parse(value: &str) -> Result<Self, DigestParseError> {
        let rest = digest_params(value)?;
        let mut c = DigestChallenge {
            realm: String::new(),
            nonce: String::new(),
            algorithm: None,
            opaque: None,
            qop: Vec::new(),
            stale: false,
        };
        let (mut has_realm, mut has_nonce) = (false, false);
        for (name, val) in tokenize_params(rest)? {
            match name.to_ascii_lowercase().as_str() {
                "realm" => (c.realm, has_realm) = (val, true),
                "nonce" => (c.nonce, has_nonce) = (val, true),
                "algorithm" => c.algorithm = Some(val),
                "opaque" => c.opaque = Some(val),
                "qop" => c.qop = val.split(',').map(|q| q.trim().to_string()).collect(),
                "stale" => c.stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        if !has_realm {
            return Err(DigestParseError::Missing("realm"));
        }
        if !has_nonce {
            return Err(DigestParseError::Missing("nonce"));
        }
        Ok(c)
    }
}

/// HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2), for the
/// base hash of `algorithm`.
pub fn ha1_from_password(
    algorithm: DigestAlgorithm,
    username: &str,
    realm: &str,
    password: &str,
) -> String {
    algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The `qop=auth` inputs of a request-digest.
#[derive(Debug, Clone, Copy)]
pub struct QopAuth<'a> {
    /// `nc` exactly as sent (hashed verbatim).
    pub nc: &'a str,
    pub cnonce: &'a str,
}

/// What a request-digest is computed from.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    pub algorithm: DigestAlgorithm,
    /// The non-session HA1 (from the password or stored).
    pub ha1: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `None`: RFC 2069 style, no qop.
    pub qop: Option<QopAuth<'a>>,
    /// The client nonce for `-sess` algorithms (equal to `qop.cnonce` in practice).
    pub cnonce: Option<&'a str>,
}

/// Why a request-digest cannot be computed from these inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("session algorithm without cnonce")]
    SessionWithoutCnonce,
}

/// The expected request-digest (RFC 7616 §3.4.1), lower-case hex.
pub fn request_digest(input: &DigestInput<'_>) -> Result<String, DigestError> {
    let alg = input.algorithm;
    let ha1 = if alg.is_session() {
        let cnonce = input
            .cnonce
            .or(input.qop.map(|q| q.cnonce))
            .ok_or(DigestError::SessionWithoutCnonce)?;
        alg.hash_hex(format!("{}:{}:{}", input.ha1, input.nonce, cnonce).as_bytes())
    } else {
        input.ha1.to_string()
    };
    let ha2 = alg.hash_hex(format!("{}:{}", input.method, input.uri).as_bytes());
    let kd = match input.qop {
        Some(q) => format!("{ha1}:{}:{}:{}:auth:{ha2}", input.nonce, q.nc, q.cnonce),
        None => format!("{ha1}:{}:{ha2}", input.nonce),
    };
    Ok(alg.hash_hex(kd.as_bytes()))
}

/// Compares a received request-digest with the expected one without
/// leaking, through timing, how many leading characters matched.
pub fn digests_match(expected: &str, received: &str) -> bool {
    let received = received.trim().to_ascii_lowercase();
    bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1: GET /dir/index.html, Mufasa / "Circle of Life".
    const REALM: &str = "http-auth@example.org";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616(alg: DigestAlgorithm) -> String {
        let ha1 = ha1_from_password(alg, "Mufasa", REALM, "Circle of Life");
        request_digest(&DigestInput {
            algorithm: alg,
            ha1: &ha1,
            method: "GET",
            uri: "/dir/index.html",
            nonce: NONCE,
            qop: Some(QopAuth {
                nc: "00000001",
                cnonce: CNONCE,
            }),
            cnonce: None,
        })
        .unwrap()
    }

    #[test]
    fn rfc7616_md5_example() {
        assert_eq!(
            rfc7616(DigestAlgorithm::Md5),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_sha256_example() {
        assert_eq!(
            rfc7616(DigestAlgorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2617_md5_example() {
        // RFC 2617 §3.5: the classic example, qop=auth.
        let ha1 = ha1_from_password(
            DigestAlgorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = request_digest(&DigestInput {
            algorithm: DigestAlgorithm::Md5,
            ha1: &ha1,
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some(QopAuth {
                nc: "00000001",
                cnonce: "0a4f113b",
            }),
            cnonce: None,
        })
        .unwrap();
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    // A SIP REGISTER, MD5 without qop (RFC 2069 form as RFC 3261 §22.4
    // allows) and with qop=auth; expected values computed independently
    // (Python hashlib) from the same inputs.
    #[test]
    fn sip_register_md5_examples() {
        let ha1 = ha1_from_password(DigestAlgorithm::Md5, "bob", "biloxi.com", "zanzibar");
        assert_eq!(ha1, "12af60467a33e8518da5c68bbff12b11");
        let base = DigestInput {
            algorithm: DigestAlgorithm::Md5,
            ha1: &ha1,
            method: "REGISTER",
            uri: "sip:biloxi.com",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: None,
            cnonce: None,
        };
        let no_qop = request_digest(&base).unwrap();
        let with_qop = request_digest(&DigestInput {
            qop: Some(QopAuth {
                nc: "00000001",
                cnonce: "0a4f113b",
            }),
            ..base
        })
        .unwrap();
        assert_eq!(no_qop, SIP_NO_QOP);
        assert_eq!(with_qop, SIP_QOP);
    }
    const SIP_NO_QOP: &str = "4441045a8075db3ead543693997e2a0e";
    const SIP_QOP: &str = "9e2d1006810044fd79f39476209ae31a";

    #[test]
    fn sess_variant_mixes_nonce_and_cnonce() {
        let ha1 = ha1_from_password(DigestAlgorithm::Md5, "Mufasa", REALM, "Circle of Life");
        let input = DigestInput {
            algorithm: DigestAlgorithm::Md5Sess,
            ha1: &ha1,
            method: "REGISTER",
            uri: "sip:example.org",
            nonce: "abc",
            qop: Some(QopAuth {
                nc: "00000001",
                cnonce: "xyz",
            }),
            cnonce: None,
        };
        let sess_ha1 = DigestAlgorithm::Md5.hash_hex(format!("{ha1}:abc:xyz").as_bytes());
        let plain = request_digest(&DigestInput {
            algorithm: DigestAlgorithm::Md5,
            ha1: &sess_ha1,
            ..input
        })
        .unwrap();
        assert_eq!(request_digest(&input).unwrap(), plain);
        let no_cnonce = DigestInput { qop: None, ..input };
        assert_eq!(
            request_digest(&no_cnonce),
            Err(DigestError::SessionWithoutCnonce)
        );
    }

    #[test]
    fn parses_authorization_with_quotes_and_large_nc() {
        let c = DigestCredentials::parse(
            r#"Digest username="1001", realm="sw \"x\"", nonce="n1", uri="sip:example.org", response="ABCDEF", algorithm=SHA-256, cnonce="c, 1", qop=auth, nc=0000012a, opaque="o""#,
        )
        .unwrap();
        assert_eq!(c.username, "1001");
        assert_eq!(c.realm, r#"sw "x""#);
        assert_eq!(c.cnonce.as_deref(), Some("c, 1"));
        assert_eq!(c.nc, Some(0x12a));
        assert_eq!(c.nc_raw.as_deref(), Some("0000012a"));
        assert_eq!(c.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert!(digests_match("abcdef", &c.response));
        assert!(!digests_match("abcdee", &c.response));
        assert!(!digests_match("abcdef00", &c.response));
    }

    #[test]
    fn rejects_malformed_authorization() {
        assert_eq!(
            DigestCredentials::parse(r#"Basic dXNlcjpwYXNz"#),
            Err(DigestParseError::NotDigest)
        );
        assert_eq!(
            DigestCredentials::parse(r#"Digest username="a", realm="r""#),
            Err(DigestParseError::Missing("nonce"))
        );
        assert_eq!(
            DigestCredentials::parse(
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", nc=1000000000"#
            ),
            Err(DigestParseError::BadNonceCount)
        );
        assert_eq!(
            DigestCredentials::parse(r#"Digest username="a"#),
            Err(DigestParseError::Syntax)
        );
    }

    #[test]
    fn algorithm_tokens_round_trip() {
        for a in [
            DigestAlgorithm::Md5,
            DigestAlgorithm::Md5Sess,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha256Sess,
        ] {
            assert_eq!(DigestAlgorithm::from_token(a.token()), Some(a));
        }
        assert_eq!(
            DigestAlgorithm::from_token("sha-256"),
            Some(DigestAlgorithm::Sha256)
        );
        assert_eq!(DigestAlgorithm::from_token("SHA-512-256"), None);
    }
}
