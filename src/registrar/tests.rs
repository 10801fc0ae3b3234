//! Registrar scenarios on a virtual clock: a phone registering through a
//! digest challenge, refreshing, unregistering, and the ways it can fail.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;
use crate::net::{ProfileId, TransportKind};
use crate::sip::{parse, SipMessage};

const REALM: &str = "pbx.example.com";
const SECRET: [u8; 32] = [42; 32];

fn settings() -> RegistrarSettings {
    let mut users = UserDirectory::new();
    users.add_password("1001", "secret1001");
    users.add_password("1002", "secret1002");
    users.add_ha1(
        "1003",
        DigestAlgorithm::Md5,
        ha1_from_password(DigestAlgorithm::Md5, "1003", REALM, "pw3"),
    );
    RegistrarSettings {
        realm: REALM.into(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 600,
        nonce_lifetime: Duration::from_secs(30),
        // Both, SHA-256 first, so that these scenarios cover both hashes
        // and the order (the shipped profile offers MD5 alone).
        algorithms: AlgorithmPolicy::new(vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5]),
        users,
        guard: GuardSettings {
            max_failures: 6,
            max_users: 3,
            window: Duration::from_secs(60),
            block: Duration::from_secs(120),
            delay_step: Duration::from_millis(500),
            max_delay: Duration::from_secs(2),
            max_tracked: 100,
        },
        ..RegistrarSettings::default()
    }
}

fn source(ip: [u8; 4]) -> Source {
    Source {
        profile: ProfileId(0),
        transport: TransportKind::Udp,
        local: "198.51.100.1:5060".parse().unwrap(),
        remote: SocketAddr::from((ip, 40000)),
        connection: None,
    }
}

/// A REGISTER for `user` with these extra header lines.
fn register(user: &str, call_id: &str, cseq: u32, extra: &[String]) -> Request {
    let mut text = format!(
        "REGISTER sip:{REALM} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK{cseq}{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{REALM}>;tag=ft{cseq}\r\n\
         To: <sip:{user}@{REALM}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n"
    );
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    match parse(text.as_bytes(), 65535).expect("test request parses") {
        SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

fn param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[at..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q[..q.find('"')?].to_string(),
        None => rest.split(',').next()?.trim().to_string(),
    })
}

/// The Authorization a client computes for `challenge`.
fn authorization(
    challenge: &str,
    user: &str,
    password: &str,
    nc: Option<u32>,
    override_alg: Option<DigestAlgorithm>,
) -> String {
    let nonce = param(challenge, "nonce").unwrap();
    let realm = param(challenge, "realm").unwrap();
    let alg = override_alg.unwrap_or_else(|| {
        DigestAlgorithm::from_token(&param(challenge, "algorithm").unwrap()).unwrap()
    });
    let uri = format!("sip:{REALM}");
    let ha1 = ha1_from_password(alg, user, &realm, password);
    let nc_text = nc.map(|n| format!("{n:08x}"));
    let qop = nc_text.as_deref().map(|nc| QopAuth {
        nc,
        cnonce: "cn0nce",
    });
    let response = request_digest(&DigestInput {
        algorithm: alg,
        ha1: &ha1,
        method: "REGISTER",
        uri: &uri,
        nonce: &nonce,
        qop,
        cnonce: qop.map(|q| q.cnonce),
    })
    .unwrap();
    let mut v = format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm={}",
        alg.token()
    );
    if let Some(nc) = nc_text {
        v.push_str(&format!(", qop=auth, cnonce=\"cn0nce\", nc={nc}"));
    }
    v
}

fn respond_of(outcome: RegisterOutcome) -> (Response, Option<Duration>) {
    match outcome {
        RegisterOutcome::Respond { response, delay } => (response, delay),
        RegisterOutcome::Challenge(response) => (response, None),
        RegisterOutcome::Drop => panic!("dropped"),
    }
}

fn code(r: &Response) -> u16 {
    r.status_code.code()
}

fn challenges(r: &Response) -> Vec<String> {
    r.header_values_unsplit_resp("WWW-Authenticate")
}

trait RespValues {
    fn header_values_unsplit_resp(&self, name: &str) -> Vec<String>;
}
impl RespValues for Response {
    fn header_values_unsplit_resp(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value().to_string())
            .collect()
    }
}

struct Phone {
    user: &'static str,
    password: &'static str,
    call_id: String,
    cseq: u32,
    src: Source,
}

impl Phone {
    fn new(user: &'static str, password: &'static str) -> Self {
        Phone {
            user,
            password,
            call_id: format!("reg-{user}@192.0.2.7"),
            cseq: 0,
            src: source([192, 0, 2, 7]),
        }
    }

    /// REGISTER, answer the 401 (SHA-256, nc=1), return the final response.
    fn register(&mut self, reg: &mut Registrar, now: Instant, extra: &[String]) -> Response {
        self.cseq += 1;
        let first = register(self.user, &self.call_id, self.cseq, extra);
        let (r, _) = respond_of(reg.handle_register(now, &first, &self.src));
        assert_eq!(code(&r), 401);
        let ch = &challenges(&r)[0];
        self.cseq += 1;
        let mut lines = extra.to_vec();
        lines.push(authorization(ch, self.user, self.password, Some(1), None));
        let second = register(self.user, &self.call_id, self.cseq, &lines);
        respond_of(reg.handle_register(now, &second, &self.src)).0
    }
}

fn events(reg: &mut Registrar) -> Vec<String> {
    std::iter::from_fn(|| reg.poll_event())
        .map(|e| e.to_line())
        .collect()
}

fn contact(uri: &str, rest: &str) -> String {
    format!("Contact: <{uri}>{rest}")
}

#[test]
fn challenge_then_register_then_200_with_contact_and_expires() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    reg.set_wall_clock(t0, UNIX_EPOCH + Duration::from_secs(1_289_690_940));
    let mut phone = Phone::new("1001", "secret1001");
    phone.cseq += 1;
    let first = register(
        "1001",
        &phone.call_id,
        phone.cseq,
        &[contact("sip:1001@192.0.2.7:5062", "")],
    );
    let (r, delay) = respond_of(reg.handle_register(t0, &first, &phone.src));
    assert_eq!((code(&r), delay), (401, None));
    assert!(r.to_tag().is_some());
    let ch = challenges(&r);
    assert_eq!(ch.len(), 2);
    assert!(ch[0].contains("algorithm=SHA-256"), "SHA-256 first: {ch:?}");
    assert!(ch[1].contains("algorithm=MD5"));
    assert!(ch[0].contains(&format!("realm=\"{REALM}\"")) && ch[0].contains("qop=\"auth\""));
    assert!(reg.lookup("1001").is_empty());

    phone.cseq += 1;
    let second = register(
        "1001",
        &phone.call_id,
        phone.cseq,
        &[
            contact("sip:1001@192.0.2.7:5062", ""),
            "Expires: 120".into(),
            authorization(&ch[0], "1001", "secret1001", Some(1), None),
        ],
    );
    let (r, delay) = respond_of(reg.handle_register(t0, &second, &phone.src));
    assert_eq!((code(&r), delay), (200, None));
    assert!(r.to_tag().is_some());
    assert_eq!(
        r.header_values("Contact"),
        vec!["<sip:1001@192.0.2.7:5062>;expires=120"]
    );
    assert_eq!(
        r.header_value("Date"),
        Some("Sat, 13 Nov 2010 23:29:00 GMT")
    );
    let b = reg.lookup("1001");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact, "sip:1001@192.0.2.7:5062");
    assert_eq!(b[0].expires_at, t0 + Duration::from_secs(120));
    assert_eq!(b[0].source, phone.src);
    assert_eq!(b[0].cseq, 2);
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(120)));
    assert_eq!(
        events(&mut reg),
        vec!["registered user=1001 contact=<sip:1001@192.0.2.7:5062> expires=120"]
    );
}

#[test]
fn md5_and_stored_ha1_and_rfc2069_no_qop() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 8]);
    let (r, _) = respond_of(reg.handle_register(t0, &register("1003", "c3", 1, &[]), &src));
    let ch = challenges(&r);
    let md5 = ch.iter().find(|c| c.contains("algorithm=MD5")).unwrap();
    // qop=auth with MD5 against a stored HA1.
    let req = register(
        "1003",
        "c3",
        2,
        &[
            contact("sip:1003@192.0.2.8", ""),
            authorization(md5, "1003", "pw3", Some(1), None),
        ],
    );
    assert_eq!(
        code(&respond_of(reg.handle_register(t0, &req, &src)).0),
        200
    );
    // RFC 2069 style: no qop, no nc.
    let req = register(
        "1003",
        "c3",
        3,
        &[
            contact("sip:1003@192.0.2.8", ""),
            authorization(md5, "1003", "pw3", None, None),
        ],
    );
    assert_eq!(
        code(&respond_of(reg.handle_register(t0, &req, &src)).0),
        200
    );
    // SHA-256 has no HA1 stored and no password: indistinguishable from a wrong password.
    let sha = ch.iter().find(|c| c.contains("algorithm=SHA-256")).unwrap();
    let req = register(
        "1003",
        "c3",
        4,
        &[
            contact("sip:1003@192.0.2.8", ""),
            authorization(sha, "1003", "pw3", Some(1), None),
        ],
    );
    // No SHA-256 secret for 1003: it cannot be right (the configuration
    // layer offers such users MD5 alone, so a phone never gets here).
    assert_eq!(
        code(&respond_of(reg.handle_register(t0, &req, &src)).0),
        403
    );
}

#[test]
fn reregister_refreshes() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut phone = Phone::new("1001", "secret1001");
    let c = contact("sip:1001@192.0.2.7:5062", ";expires=100");
    assert_eq!(
        code(&phone.register(&mut reg, t0, std::slice::from_ref(&c))),
        200
    );
    let t1 = t0 + Duration::from_secs(80);
    let r = phone.register(&mut reg, t1, &[c]);
    assert_eq!(code(&r), 200);
    assert_eq!(
        r.header_values("Contact"),
        vec!["<sip:1001@192.0.2.7:5062>;expires=100"]
    );
    assert_eq!(reg.poll_timeout(), Some(t1 + Duration::from_secs(100)));
    reg.handle_timeout(t0 + Duration::from_secs(100));
    assert_eq!(
        reg.lookup("1001").len(),
        1,
        "refreshed binding survives the old expiry"
    );
    assert_eq!(reg.lookup("1001")[0].registered_at, t1);
}

#[test]
fn unregister_by_expires_zero_and_by_wildcard() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut phone = Phone::new("1001", "secret1001");
    let a = contact("sip:1001@192.0.2.7:5062", "");
    let b = contact("sip:1001@192.0.2.7:5064", "");
    assert_eq!(
        code(&phone.register(&mut reg, t0, &[a.clone(), b.clone()])),
        200
    );
    assert_eq!(reg.lookup("1001").len(), 2);
    events(&mut reg);

    // Expires header 0 for one contact.
    let r = phone.register(&mut reg, t0, &[a, "Expires: 0".into()]);
    assert_eq!(code(&r), 200);
    assert_eq!(
        r.header_values("Contact"),
        vec!["<sip:1001@192.0.2.7:5064>;expires=600"]
    );
    assert_eq!(
        events(&mut reg),
        vec!["unregistered user=1001 contact=<sip:1001@192.0.2.7:5062>"]
    );

    // `*` with a non-zero expiry, or with other contacts: 400.
    let r = phone.register(&mut reg, t0, &["Contact: *".into(), "Expires: 30".into()]);
    assert_eq!(code(&r), 400);
    let r = phone.register(&mut reg, t0, &["Contact: *".into(), b, "Expires: 0".into()]);
    assert_eq!(code(&r), 400);
    assert_eq!(reg.lookup("1001").len(), 1);

    // `*` with Expires: 0 removes everything.
    let r = phone.register(&mut reg, t0, &["Contact: *".into(), "Expires: 0".into()]);
    assert_eq!(code(&r), 200);
    assert!(r.header_values("Contact").is_empty());
    assert!(reg.lookup("1001").is_empty());
    assert_eq!(reg.poll_timeout(), None);
    assert_eq!(
        events(&mut reg),
        vec!["unregistered user=1001 contact=<sip:1001@192.0.2.7:5064>"]
    );
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 9]);
    let attempt = |reg: &mut Registrar, user: &str, pw: &str| {
        let (r, _) = respond_of(reg.handle_register(t0, &register(user, "x", 1, &[]), &src));
        let ch = challenges(&r)[0].clone();
        let req = register(
            user,
            "x",
            2,
            &[
                contact("sip:a@192.0.2.9", ""),
                authorization(&ch, user, pw, Some(1), None),
            ],
        );
        respond_of(reg.handle_register(t0, &req, &src))
    };
    let (wrong, d1) = attempt(&mut reg, "1001", "guess");
    let (unknown, d2) = attempt(&mut reg, "9999", "guess");
    // 403, not another challenge: a phone would answer it with the same
    // wrong password and spend several failures on one login.
    assert_eq!(code(&wrong), 403);
    assert_eq!(code(&unknown), 403);
    assert_eq!(wrong.status_code, unknown.status_code);
    assert_eq!((d1, d2), (None, None));
    let names = |r: &Response| {
        r.headers
            .iter()
            .map(|h| h.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&wrong), names(&unknown));
    assert!(challenges(&wrong).is_empty() && challenges(&unknown).is_empty());
    assert_eq!(
        events(&mut reg),
        vec![
            "auth-failed user=1001 source=192.0.2.9",
            "auth-failed user=9999 source=192.0.2.9"
        ]
    );
}

#[test]
fn username_must_match_to_user() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 7]);
    let (r, _) = respond_of(reg.handle_register(t0, &register("1002", "y", 1, &[]), &src));
    let ch = challenges(&r)[0].clone();
    // 1001's valid credentials used to register 1002.
    let req = register(
        "1002",
        "y",
        2,
        &[
            contact("sip:1002@192.0.2.7", ""),
            authorization(&ch, "1001", "secret1001", Some(1), None),
        ],
    );
    let (r, _) = respond_of(reg.handle_register(t0, &req, &src));
    assert_eq!(code(&r), 403);
    assert!(reg.lookup("1002").is_empty());
}

#[test]
fn expired_nonce_with_right_password_is_stale() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 7]);
    let (r, _) = respond_of(reg.handle_register(t0, &register("1001", "s", 1, &[]), &src));
    let ch = challenges(&r)[0].clone();
    let later = t0 + Duration::from_secs(31);
    let ok = authorization(&ch, "1001", "secret1001", Some(1), None);
    let req = register("1001", "s", 2, &[contact("sip:1001@192.0.2.7", ""), ok]);
    let (r, _) = respond_of(reg.handle_register(later, &req, &src));
    assert_eq!(code(&r), 401);
    let fresh = challenges(&r);
    assert!(fresh.iter().all(|c| c.contains("stale=true")), "{fresh:?}");
    assert_ne!(param(&fresh[0], "nonce"), param(&ch, "nonce"));
    assert!(events(&mut reg).is_empty(), "stale is not a failure");

    // With a wrong password the expired nonce is just a failure.
    let bad = authorization(&ch, "1001", "nope", Some(1), None);
    let req = register("1001", "s", 3, &[contact("sip:1001@192.0.2.7", ""), bad]);
    let (r, _) = respond_of(reg.handle_register(later, &req, &src));
    assert_eq!(code(&r), 403);
    assert!(challenges(&r).is_empty());

    // The fresh nonce works.
    let ok = authorization(&fresh[0], "1001", "secret1001", Some(1), None);
    let req = register("1001", "s", 4, &[contact("sip:1001@192.0.2.7", ""), ok]);
    assert_eq!(
        code(&respond_of(reg.handle_register(later, &req, &src)).0),
        200
    );
}

#[test]
fn user_agent_and_user_choose_the_challenge() {
    use DigestAlgorithm::{Md5, Sha256};
    let t0 = Instant::now();
    let mut s = settings();
    s.algorithms = AlgorithmPolicy::new(vec![Md5])
        .with_user_agent(regex::Regex::new("^PJSIP").unwrap(), vec![Sha256])
        .with_user("1002", vec![Sha256]);
    let mut reg = Registrar::new(s, SECRET);
    let src = source([192, 0, 2, 7]);
    let algs = |r: &Response| {
        challenges(r)
            .iter()
            .map(|c| param(c, "algorithm").unwrap())
            .collect::<Vec<_>>()
    };
    // The profile's default: one MD5 challenge.
    let ua = |v: &str| format!("User-Agent: {v}");
    let (r, _) = respond_of(reg.handle_register(
        t0,
        &register("1001", "u1", 1, &[ua("baresip v1.0.0")]),
        &src,
    ));
    assert_eq!(algs(&r), ["MD5"]);
    // A phone model given SHA-256.
    let (r, _) = respond_of(reg.handle_register(
        t0,
        &register("1001", "u2", 1, &[ua("PJSIP 2.15.1")]),
        &src,
    ));
    assert_eq!(algs(&r), ["SHA-256"]);
    let pj = challenges(&r)[0].clone();
    // MD5 from that phone is not offered to it: a fresh challenge, no blame.
    let md5 = authorization(&pj, "1001", "secret1001", Some(1), Some(Md5));
    let req = register(
        "1001",
        "u2",
        2,
        &[ua("PJSIP 2.15.1"), contact("sip:1001@192.0.2.7", ""), md5],
    );
    let (r, _) = respond_of(reg.handle_register(t0, &req, &src));
    assert_eq!(code(&r), 401);
    assert_eq!(algs(&r), ["SHA-256"]);
    assert!(
        events(&mut reg).is_empty(),
        "an algorithm not offered is no failure"
    );
    // A user given SHA-256 gets it whatever its phone, and registers with it.
    let (r, _) = respond_of(reg.handle_register(
        t0,
        &register("1002", "u3", 1, &[ua("baresip v1.0.0")]),
        &src,
    ));
    assert_eq!(algs(&r), ["SHA-256"]);
    let ok = authorization(&challenges(&r)[0], "1002", "secret1002", Some(1), None);
    let req = register(
        "1002",
        "u3",
        2,
        &[ua("baresip v1.0.0"), contact("sip:1002@192.0.2.7", ""), ok],
    );
    assert_eq!(
        code(&respond_of(reg.handle_register(t0, &req, &src)).0),
        200
    );
}

#[test]
fn forged_nonce_gets_a_stale_challenge_and_foreign_realm_a_plain_one() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 7]);
    let mut other = Registrar::new(settings(), [1; 32]);
    let (r, _) = respond_of(other.handle_register(t0, &register("1001", "f", 1, &[]), &src));
    let foreign = challenges(&r)[0].clone();
    let req = register(
        "1001",
        "f",
        2,
        &[authorization(&foreign, "1001", "secret1001", Some(1), None)],
    );
    let (r, _) = respond_of(reg.handle_register(t0, &req, &src));
    assert_eq!(code(&r), 401);
    // A nonce this run did not mint (another secret: a restart) is answered
    // stale, so the phone retries by itself with the fresh one.
    let fresh = challenges(&r);
    assert!(fresh.iter().all(|c| c.contains("stale=true")), "{fresh:?}");
    assert_ne!(param(&fresh[0], "nonce"), param(&foreign, "nonce"));
    let garbled = foreign.replace(&param(&foreign, "nonce").unwrap(), "bm90LWEtbm9uY2U");
    let req = register(
        "1001",
        "f",
        3,
        &[authorization(&garbled, "1001", "secret1001", Some(1), None)],
    );
    let (r, _) = respond_of(reg.handle_register(t0, &req, &src));
    assert_eq!(code(&r), 401);
    assert!(challenges(&r).iter().all(|c| c.contains("stale=true")));
    let realm = foreign.replace(REALM, "elsewhere");
    let req = register(
        "1001",
        "f",
        4,
        &[authorization(&realm, "1001", "secret1001", Some(1), None)],
    );
    assert_eq!(
        code(&respond_of(reg.handle_register(t0, &req, &src)).0),
        401
    );
    assert!(events(&mut reg).is_empty());
}

#[test]
fn nc_replay_rejected_and_large_nc_accepted() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 7]);
    let (r, _) = respond_of(reg.handle_register(t0, &register("1001", "n", 1, &[]), &src));
    let ch = challenges(&r)[0].clone();
    let mut cseq = 1;
    let mut send = |reg: &mut Registrar, nc: u32| {
        cseq += 1;
        let req = register(
            "1001",
            "n",
            cseq,
            &[
                contact("sip:1001@192.0.2.7", ""),
                authorization(&ch, "1001", "secret1001", Some(nc), None),
            ],
        );
        code(&respond_of(reg.handle_register(t0, &req, &src)).0)
    };
    assert_eq!(send(&mut reg, 1), 200);
    assert_eq!(send(&mut reg, 1), 403, "same nc replayed");
    assert_eq!(send(&mut reg, 0x0a), 200, "above 9");
    assert_eq!(send(&mut reg, 0x100), 200, "above ff");
    assert_eq!(send(&mut reg, 0xff), 403, "going back");
    assert_eq!(send(&mut reg, 0x1_0000), 200);
}

#[test]
fn too_brief_gets_423_and_long_is_capped() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut phone = Phone::new("1001", "secret1001");
    let r = phone.register(
        &mut reg,
        t0,
        &[contact("sip:1001@192.0.2.7", ";expires=30")],
    );
    assert_eq!(code(&r), 423);
    assert_eq!(r.header_value("Min-Expires"), Some("60"));
    assert!(reg.lookup("1001").is_empty());
    let r = phone.register(
        &mut reg,
        t0,
        &[contact("sip:1001@192.0.2.7", ""), "Expires: 59".into()],
    );
    assert_eq!(code(&r), 423);
    // The Contact parameter overrides the header.
    let r = phone.register(
        &mut reg,
        t0,
        &[
            contact("sip:1001@192.0.2.7", ";expires=99999"),
            "Expires: 10".into(),
        ],
    );
    assert_eq!(code(&r), 200);
    assert_eq!(
        r.header_values("Contact"),
        vec!["<sip:1001@192.0.2.7>;expires=3600"]
    );
}

#[test]
fn several_contacts_per_aor_and_lookup_order() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut desk = Phone::new("1001", "secret1001");
    let mut soft = Phone::new("1001", "secret1001");
    soft.call_id = "soft@192.0.2.20".into();
    soft.src = source([192, 0, 2, 20]);
    assert_eq!(
        code(&desk.register(&mut reg, t0, &[contact("sip:1001@192.0.2.7", ";q=0.5")])),
        200
    );
    let r = soft.register(
        &mut reg,
        t0 + Duration::from_secs(1),
        &[contact(
            "sip:1001@192.0.2.20;transport=tcp",
            r#";+sip.instance="<urn:uuid:abc>";reg-id=1"#,
        )],
    );
    assert_eq!(code(&r), 200);
    let mut listed = r.header_values("Contact");
    listed.sort();
    assert_eq!(
        listed,
        vec![
            "<sip:1001@192.0.2.20;transport=tcp>;expires=600;+sip.instance=\"<urn:uuid:abc>\";reg-id=1",
            "<sip:1001@192.0.2.7>;expires=599;q=0.5",
        ]
    );
    let found = reg.lookup("1001");
    assert_eq!(found[0].contact, "sip:1001@192.0.2.20;transport=tcp");
    assert_eq!(
        found[0].source.remote.ip(),
        std::net::IpAddr::from([192, 0, 2, 20])
    );
    assert_eq!(found[0].instance_id.as_deref(), Some("<urn:uuid:abc>"));
    assert_eq!(found[1].q, QValue(500));
}

#[test]
fn expiry_at_the_right_virtual_time() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut phone = Phone::new("1001", "secret1001");
    phone.register(
        &mut reg,
        t0,
        &[contact("sip:1001@192.0.2.7", ";expires=60")],
    );
    phone.register(
        &mut reg,
        t0,
        &[contact("sip:1001@192.0.2.8", ";expires=90")],
    );
    events(&mut reg);
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    reg.handle_timeout(t0 + Duration::from_millis(59_999));
    assert_eq!(reg.lookup("1001").len(), 2);
    assert!(events(&mut reg).is_empty());
    reg.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(
        events(&mut reg),
        vec!["binding-expired user=1001 contact=<sip:1001@192.0.2.7>"]
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(90)));
    reg.handle_timeout(t0 + Duration::from_secs(90));
    assert!(reg.lookup("1001").is_empty());
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn query_without_contact_lists_bindings() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut phone = Phone::new("1001", "secret1001");
    phone.register(
        &mut reg,
        t0,
        &[contact("sip:1001@192.0.2.7", ";expires=300")],
    );
    events(&mut reg);
    let r = phone.register(&mut reg, t0 + Duration::from_secs(100), &[]);
    assert_eq!(code(&r), 200);
    assert_eq!(
        r.header_values("Contact"),
        vec!["<sip:1001@192.0.2.7>;expires=200"]
    );
    assert!(events(&mut reg).is_empty(), "a query changes nothing");
}

#[test]
fn out_of_order_cseq_fails_with_500() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut phone = Phone::new("1001", "secret1001");
    phone.cseq = 10;
    phone.register(&mut reg, t0, &[contact("sip:1001@192.0.2.7", "")]);
    // Same Call-ID, an older CSeq (a delayed request), fresh credentials.
    phone.cseq -= 3;
    let r = phone.register(
        &mut reg,
        t0,
        &[contact("sip:1001@192.0.2.7", ";expires=100")],
    );
    assert_eq!(code(&r), 500);
    assert_eq!(
        reg.lookup("1001")[0].expires_at,
        t0 + Duration::from_secs(600)
    );
}

#[test]
fn guard_slows_then_blocks_then_unblocks() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([203, 0, 113, 5]);
    let mut cseq = 0;
    let mut attempt = |reg: &mut Registrar, now: Instant, pw: &str| {
        cseq += 2;
        let first = register("1001", "g", cseq - 1, &[]);
        let ch = match reg.handle_register(now, &first, &src) {
            RegisterOutcome::Respond { response, .. } | RegisterOutcome::Challenge(response) => {
                challenges(&response)[0].clone()
            }
            RegisterOutcome::Drop => return RegisterOutcome::Drop,
        };
        let req = register(
            "1001",
            "g",
            cseq,
            &[
                contact("sip:1001@203.0.113.5", ""),
                authorization(&ch, "1001", pw, Some(1), None),
            ],
        );
        reg.handle_register(now, &req, &src)
    };
    let mut delays = Vec::new();
    for _ in 0..5 {
        let (r, d) = respond_of(attempt(&mut reg, t0, "bad"));
        assert_eq!(code(&r), 403);
        delays.push(d);
    }
    assert_eq!(
        delays,
        vec![
            None,
            None,
            None,
            Some(Duration::from_millis(500)),
            Some(Duration::from_secs(1))
        ]
    );
    // The sixth failure blocks the user from this source: dropped, and so
    // is everything after for that user from there.
    assert!(matches!(
        attempt(&mut reg, t0, "bad"),
        RegisterOutcome::Drop
    ));
    let lines = events(&mut reg);
    assert_eq!(
        lines.last().unwrap(),
        "user-blocked user=1001 source=203.0.113.5 for=120s"
    );
    let t1 = t0 + Duration::from_secs(119);
    assert!(matches!(
        attempt(&mut reg, t1, "secret1001"),
        RegisterOutcome::Drop
    ));
    // Another user on the same source, and another source, are unaffected.
    let mut neighbour = Phone::new("1002", "secret1002");
    neighbour.src = src;
    assert_eq!(code(&neighbour.register(&mut reg, t1, &[])), 200);
    let mut other = Phone::new("1002", "secret1002");
    assert_eq!(code(&other.register(&mut reg, t1, &[])), 200);
    // Credentials for the blocked user under another To are dropped too.
    let (r, _) = respond_of(reg.handle_register(t1, &register("1002", "h", 1, &[]), &src));
    let ch = challenges(&r)[0].clone();
    let req = register(
        "1002",
        "h",
        2,
        &[authorization(&ch, "1001", "guess", Some(1), None)],
    );
    assert!(matches!(
        reg.handle_register(t1, &req, &src),
        RegisterOutcome::Drop
    ));
    // After the block, the right password works and resets the count.
    let t2 = t0 + Duration::from_secs(120);
    assert_eq!(
        code(&respond_of(attempt(&mut reg, t2, "secret1001")).0),
        200
    );
    assert_eq!(respond_of(attempt(&mut reg, t2, "bad")).1, None);
}

#[test]
fn missing_to_user_and_require_and_malformed_authorization() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 7]);
    let req = register("1001", "m", 1, &["Require: gruu".into()]);
    let (r, _) = respond_of(reg.handle_register(t0, &req, &src));
    assert_eq!(code(&r), 420);
    assert_eq!(r.header_value("Unsupported"), Some("gruu"));
    let req = register(
        "1001",
        "m",
        2,
        &[r#"Authorization: Digest username="1001", realm="pbx.example.com""#.into()],
    );
    let (r, _) = respond_of(reg.handle_register(t0, &req, &src));
    assert_eq!(code(&r), 400);
}

#[test]
fn odd_authorization_headers_get_400_or_a_fresh_401() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 7]);
    let (r, _) = respond_of(reg.handle_register(t0, &register("1001", "o", 1, &[]), &src));
    let ch = challenges(&r)[0].clone();
    let nonce = param(&ch, "nonce").unwrap();
    let good = authorization(&ch, "1001", "secret1001", Some(1), None);
    let cases: Vec<(String, &[u16])> = vec![
        // An algorithm nobody offered: a fresh challenge.
        (
            good.replace("algorithm=SHA-256", "algorithm=SHA-512-256"),
            &[401],
        ),
        (
            good.replace("algorithm=SHA-256", "algorithm=\"\""),
            &[401, 400],
        ),
        // Another scheme.
        ("Authorization: Basic MTAwMTpzZWNyZXQ=".into(), &[401]),
        // Unterminated quotes, missing response, junk parameters.
        (
            format!(r#"Authorization: Digest username="1001, realm="{REALM}", nonce="{nonce}"#),
            &[400, 401],
        ),
        (
            format!(
                r#"Authorization: Digest username="1001", realm="{REALM}", nonce="{nonce}", uri="sip:{REALM}""#
            ),
            &[400],
        ),
        ("Authorization: Digest ,,,=,=\"".into(), &[400, 401]),
        ("Authorization: Digest".into(), &[400, 401]),
        (good.replace("qop=auth", "qop=auth-int"), &[401]),
        (good.replace("nc=00000001", "nc=zz"), &[400, 401]),
    ];
    for (i, (header, allowed)) in cases.into_iter().enumerate() {
        let req = register(
            "1001",
            "o",
            2 + i as u32,
            &[contact("sip:1001@192.0.2.7", ""), header.clone()],
        );
        let (r, _) = respond_of(reg.handle_register(t0, &req, &src));
        assert!(allowed.contains(&code(&r)), "{header}: got {}", code(&r));
        if code(&r) == 401 {
            assert!(
                !challenges(&r).is_empty(),
                "{header}: 401 without a challenge"
            );
        }
    }
    assert!(
        reg.lookup("1001").is_empty(),
        "nothing registered by odd headers"
    );
}

#[test]
fn event_lines_are_printable() {
    let e = RegistrarEvent::Unregistered {
        aor: "1001".into(),
        contact: "sip:1001@192.0.2.7".into(),
    };
    assert_eq!(
        e.to_line(),
        "unregistered user=1001 contact=<sip:1001@192.0.2.7>"
    );
    let _ = SystemTime::UNIX_EPOCH;
}

/// RFC 3327 §5.3: Path values are kept with the binding, in order, and
/// echoed in the 200 OK to a UA that supports Path; a refresh without Path
/// drops them. Every 200 says `Supported: path`.
#[test]
fn path_is_stored_and_echoed_to_a_ua_that_supports_it() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut phone = Phone::new("1001", "secret1001");
    let c = contact("sip:1001@10.0.0.7:5062", "");
    let r = phone.register(
        &mut reg,
        t0,
        &[
            c.clone(),
            "Supported: path".into(),
            "Path: <sip:edge1.example.com;lr>".into(),
            "Path: <sip:192.0.2.50:5070;lr;received=sip:10.0.0.7:5062>, <sip:core;lr>".into(),
        ],
    );
    assert_eq!(code(&r), 200);
    let path = vec![
        "<sip:edge1.example.com;lr>",
        "<sip:192.0.2.50:5070;lr;received=sip:10.0.0.7:5062>",
        "<sip:core;lr>",
    ];
    assert_eq!(r.header_values("Path"), path);
    assert_eq!(r.header_value("Supported"), Some("path"));
    assert_eq!(reg.lookup("1001")[0].path, path);

    // A refresh straight from the phone: no Path any more.
    let r = phone.register(&mut reg, t0 + Duration::from_secs(10), &[c]);
    assert_eq!(code(&r), 200);
    assert!(r.header_values("Path").is_empty());
    assert_eq!(r.header_value("Supported"), Some("path"));
    assert!(reg.lookup("1001")[0].path.is_empty());
}

/// A UA that did not say it supports Path (baresip 1.0 does not) is still
/// registered with the Path its proxy added, which is not echoed to it.
#[test]
fn path_from_a_ua_without_supported_path_is_kept_not_echoed() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let mut phone = Phone::new("1002", "secret1002");
    let r = phone.register(
        &mut reg,
        t0,
        &[
            contact("sip:1002@10.0.0.8:5062", ""),
            "Path: <sip:192.0.2.50:5070;lr>".into(),
        ],
    );
    assert_eq!(code(&r), 200);
    assert!(r.header_values("Path").is_empty());
    assert_eq!(reg.lookup("1002")[0].path, vec!["<sip:192.0.2.50:5070;lr>"]);
}

/// `Require: path` is understood; any other required extension is not.
#[test]
fn require_path_is_accepted_and_others_refused() {
    let t0 = Instant::now();
    let mut reg = Registrar::new(settings(), SECRET);
    let src = source([192, 0, 2, 7]);
    let req = register(
        "1001",
        "rq",
        1,
        &["Require: path, gruu".into(), "Path: <sip:p;lr>".into()],
    );
    let (r, _) = respond_of(reg.handle_register(t0, &req, &src));
    assert_eq!(code(&r), 420);
    assert_eq!(r.header_value("Unsupported"), Some("gruu"));

    let mut phone = Phone::new("1001", "secret1001");
    let r = phone.register(
        &mut reg,
        t0,
        &[
            contact("sip:1001@10.0.0.7:5062", ""),
            "Require: path".into(),
            "Path: <sip:192.0.2.50:5070;lr>".into(),
        ],
    );
    assert_eq!(code(&r), 200);
    assert_eq!(r.header_values("Path"), vec!["<sip:192.0.2.50:5070;lr>"]);
}
