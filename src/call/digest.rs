//! Answering a trunk's 401/407 challenge to our INVITE (RFC 3261 §22.2,
//! RFC 8760 algorithms): the same INVITE again with a higher CSeq, a fresh
//! branch and the credentials header, computed with `crate::digest`, the one
//! implementation of RFC 7616 in the code base, which the registrar shares.

use crate::digest::{
    ha1_from_password, request_digest, DigestAlgorithm, DigestChallenge, DigestInput, QopAuth,
};
use crate::sip::{generate_branch, make_header, Header, MessageHeaders, Request, Response};

/// The INVITE `invite` again, answering `challenge` with `username`/`password`;
/// `None` when the challenge cannot be answered (no Digest, unknown algorithm).
pub fn answer_challenge(
    invite: &Request,
    challenge: &Response,
    username: &str,
    password: &str,
) -> Option<Request> {
    let proxy = challenge.status_code.code() == 407;
    let header = if proxy {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    // Several challenges (RFC 8760 §2.4): take the first algorithm we know.
    let (c, algorithm) = challenge
        .header_values_whole(header)
        .into_iter()
        .find_map(|v| {
            let c = DigestChallenge::parse(v).ok()?;
            let alg = match &c.algorithm {
                None => DigestAlgorithm::Md5,
                Some(a) => DigestAlgorithm::from_token(a)?,
            };
            Some((c, alg))
        })?;
    let uri = invite.uri.to_string();
    let method = invite.method.to_string();
    let ha1 = ha1_from_password(algorithm.base(), username, &c.realm, password);
    let qop = c.qop.iter().any(|q| q.eq_ignore_ascii_case("auth"));
    let cnonce = format!("{:016x}", rand::random::<u64>());
    let nc = "00000001";
    let response = request_digest(&DigestInput {
        algorithm,
        ha1: &ha1,
        method: &method,
        uri: &uri,
        nonce: &c.nonce,
        qop: qop.then_some(QopAuth {
            nc,
            cnonce: &cnonce,
        }),
        cnonce: Some(&cnonce),
    })
    .ok()?;
    let mut value = format!(
        "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
        c.realm,
        c.nonce,
        algorithm.token()
    );
    if qop {
        value.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &c.opaque {
        value.push_str(&format!(", opaque=\"{o}\""));
    }
    let auth_name = if proxy {
        "Proxy-Authorization"
    } else {
        "Authorization"
    };
    let mut next = next_attempt(invite);
    next.headers.push(make_header(auth_name, value));
    Some(next)
}

/// The INVITE `invite` as a new transaction (§8.1.3.5): the same sent-by
/// with a fresh branch, the CSeq one higher, and no credentials (they
/// answered another challenge). Used to answer a challenge and to try the
/// next server of a peer (RFC 3263 §4.3).
pub fn next_attempt(invite: &Request) -> Request {
    let mut next = invite.clone();
    let cseq = invite.cseq().map(|(n, _)| n + 1).unwrap_or(2);
    let mut headers = crate::sip::Headers::default();
    let mut first_via = true;
    for h in next.headers.iter() {
        let keep = match h {
            Header::Via(v) if std::mem::take(&mut first_via) => {
                let text = v.value().to_string();
                let base = text.split(";branch=").next().unwrap_or(&text).to_string();
                let rest: String = text
                    .split(";branch=")
                    .nth(1)
                    .and_then(|r| r.split_once(';').map(|(_, p)| format!(";{p}")))
                    .unwrap_or_default();
                headers.push(make_header(
                    "Via",
                    format!("{base};branch={}{rest}", generate_branch()),
                ));
                false
            }
            Header::CSeq(_) => {
                headers.push(make_header("CSeq", format!("{cseq} INVITE")));
                false
            }
            Header::Authorization(_) | Header::ProxyAuthorization(_) => false,
            _ => true,
        };
        if keep {
            headers.push(h.clone());
        }
    }
    next.headers = headers;
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{parse, SipMessage};

    #[test]
    fn challenge_answered_with_new_branch_and_cseq() {
        let text = "INVITE sip:5551234@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKold;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@h>;tag=a\r\nTo: <sip:5551234@h>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let SipMessage::Request(invite) = parse(text.as_bytes(), 65535).unwrap() else {
            unreachable!()
        };
        let mut r = crate::sip::response_to(&invite, 407, None);
        r.headers.push(make_header(
            "Proxy-Authenticate",
            "Digest realm=\"gw\", nonce=\"abc\", qop=\"auth\"".into(),
        ));
        let next = answer_challenge(&invite, &r, "u", "p").expect("answerable");
        let via = next.header_value("Via").unwrap();
        assert!(
            via.starts_with("SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK"),
            "{via}"
        );
        assert!(
            !via.contains("z9hG4bKold") && via.ends_with(";rport"),
            "{via}"
        );
        assert_eq!(next.cseq().map(|c| c.0), Some(2));
        assert!(next
            .header_value("Proxy-Authorization")
            .unwrap()
            .contains("qop=auth"));
    }
}
