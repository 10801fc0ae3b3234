//! Consultation, attended transfer by the API, cancel, a failed
//! consultation and a three-party conference, with the real binary on
//! loopback, SIPp phones for the signalling and our own RTP endpoints for
//! the audio (each party sends its own tone; what each one receives is
//! analysed by frequency, Goertzel).
//!
//! The call: 1001 (a SIPp caller, leg a) calls 1002 (a SIPp phone, leg b).
//! 1002 is the agent (`"leg":"b"`), 1001 the contact, 1003 the consulted
//! party.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::calls::{CallConfig, Lab};
use common::rtp::{pcmu_samples, RtpEndpoint, RtpPacket, ToneGuard};
use common::sippbg::{body, sdp_audio, SippBg};
use common::wav::goertzel;
use common::{http, EVENT};

const CONTACT_HZ: f64 = 440.0;
const AGENT_HZ: f64 = 770.0;
const CONSULTED_HZ: f64 = 1210.0;

/// The tone's amplitude (full scale 1.0) in `x`: a sine of amplitude A
/// gives a normalised Goertzel power of A² N / 4 on its bin.
fn amplitude(x: &[f64], hz: f64) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (4.0 * goertzel(x, 8000, hz) / x.len() as f64).sqrt()
}

/// What `sock` receives for `window` (after dropping what is queued):
/// PCMU decoded, and how many packets came.
fn hear(sock: &UdpSocket, window: Duration) -> (Vec<f64>, usize) {
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    while sock.recv_from(&mut buf).is_ok() {}
    let deadline = Instant::now() + window;
    let mut packets = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if let Some(p) = RtpPacket::parse(&buf[..n], from) {
                packets.push(p);
            }
        }
    }
    (pcmu_samples(&packets), packets.len())
}

/// Which of the tones `sock` hears, over 600 ms: (contact, agent, consulted).
fn tones(sock: &UdpSocket) -> ((f64, f64, f64), usize) {
    let (x, n) = hear(sock, Duration::from_millis(600));
    (
        (
            amplitude(&x, CONTACT_HZ),
            amplitude(&x, AGENT_HZ),
            amplitude(&x, CONSULTED_HZ),
        ),
        n,
    )
}

const HEARD: f64 = 0.05;
const SILENT: f64 = 0.01;

/// Waits (bounded) until `sock` hears the tone `hz`, the one of `others`
/// staying below `SILENT`; fails showing the amplitudes it measured.
fn assert_hears(sock: &UdpSocket, who: &str, hz: f64, silent: &[f64]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let (x, n) = hear(sock, Duration::from_millis(400));
        let on = amplitude(&x, hz);
        let off: Vec<f64> = silent.iter().map(|&f| amplitude(&x, f)).collect();
        if on > HEARD && off.iter().all(|&a| a < SILENT) {
            return;
        }
        seen.push(format!("{n} packets, {hz} Hz: {on:.3}, others {off:.3?}"));
        assert!(
            Instant::now() < deadline,
            "{who} should hear {hz} Hz and not {silent:?}; measured:\n{}",
            seen.join("\n")
        );
    }
}

struct Parties {
    lab: Lab,
    call: String,
    contact: SippBg,
    agent: SippBg,
    contact_rx: UdpSocket,
    agent_rx: UdpSocket,
    /// Tones sent to the switch's relay addresses, from the parties' endpoints.
    _contact_tone: ToneGuard,
    _agent_tone: ToneGuard,
}

/// The relay address the switch gave a SIPp phone, from the INVITE it received.
fn relay_of_phone(phone: &SippBg, who: &str) -> SocketAddr {
    let invite = phone.wait_received(&format!("the INVITE to {who}"), EVENT, |m| {
        m.starts_with("INVITE ") && body(m).contains("m=audio")
    });
    sdp_audio(&invite).expect("SDP in the INVITE")
}

/// 1001 (contact) -> 1002 (agent), bridged, each sending its tone.
fn connected(lab: Lab) -> Parties {
    let mut lab = lab;
    let agent_rtp = RtpEndpoint::bind();
    let agent = lab.phone("1002", "phone_answer", |s| s.rtp_port(agent_rtp.port));
    let contact_rtp = RtpEndpoint::bind();
    let contact = lab
        .caller("1001", "1002", "call")
        .rtp_port(contact_rtp.port)
        .spawn();
    let call = lab.call_started(&[("from", "1001"), ("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    let ok = contact.wait_received("a 200 with SDP", EVENT, |m| {
        m.starts_with("SIP/2.0 200") && body(m).contains("m=audio")
    });
    let contact_relay = sdp_audio(&ok).expect("SDP in the 200");
    let agent_relay = relay_of_phone(&agent, "1002");
    let contact_rx = contact_rtp.sock.try_clone().unwrap();
    let agent_rx = agent_rtp.sock.try_clone().unwrap();
    let p = Parties {
        lab,
        call,
        contact,
        agent,
        contact_rx,
        agent_rx,
        _contact_tone: ToneGuard::start(contact_rtp, contact_relay, CONTACT_HZ),
        _agent_tone: ToneGuard::start(agent_rtp, agent_relay, AGENT_HZ),
    };
    assert_hears(&p.agent_rx, "the agent", CONTACT_HZ, &[AGENT_HZ]);
    assert_hears(&p.contact_rx, "the contact", AGENT_HZ, &[CONTACT_HZ]);
    p
}

/// The consulted party 1003 answers a consultation the agent starts; its
/// tone runs.
fn consult(p: &mut Parties) -> (SippBg, UdpSocket, ToneGuard) {
    let rtp = RtpEndpoint::bind();
    let phone = p
        .lab
        .phone("1003", "phone_answer", |s| s.rtp_port(rtp.port));
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/consult", p.call),
        r#"{"leg":"b","to":"1003"}"#,
    );
    p.lab.wait(
        "call-consult",
        &[("call", &p.call), ("by", "b"), ("to", "1003")],
    );
    p.lab.wait(
        "call-consult-progress",
        &[("call", &p.call), ("progress", "answered")],
    );
    let relay = relay_of_phone(&phone, "1003");
    let rx = rtp.sock.try_clone().unwrap();
    let tone = ToneGuard::start(rtp, relay, CONSULTED_HZ);
    (phone, rx, tone)
}

fn post_status(p: &Parties, action: &str) -> (u16, serde_json::Value) {
    let r = http::post(
        p.lab.http(),
        &format!("/v1/calls/{}/{action}", p.call),
        "{}",
    );
    let json = serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, json)
}

#[test]
fn consult_then_complete_transfer_connects_contact_and_consulted() {
    let mut p = connected(Lab::start(CallConfig::default()));
    // Nothing to complete or conference on a two-party call: 409 naming the state.
    for action in ["complete-transfer", "conference", "alternate"] {
        let (status, json) = post_status(&p, action);
        assert_eq!(status, 409, "{action}: {json}");
        assert_eq!(json["code"], "wrong_state", "{json}");
        assert!(
            json["message"].as_str().unwrap_or("").contains("two-party"),
            "{json}"
        );
    }
    let (consulted, consulted_rx, _tone) = consult(&mut p);
    // The agent talks to the consulted party; the contact is held and hears nothing.
    assert_hears(&p.agent_rx, "the agent", CONSULTED_HZ, &[CONTACT_HZ]);
    assert_hears(
        &consulted_rx,
        "the consulted party",
        AGENT_HZ,
        &[CONTACT_HZ],
    );
    let ((c, a, k), n) = tones(&p.contact_rx);
    assert!(
        c < SILENT && a < SILENT && k < SILENT,
        "the held contact hears nothing: {n} packets, {c:.3} {a:.3} {k:.3}"
    );
    // A second consultation is refused, naming the state.
    let r = http::post(
        p.lab.http(),
        &format!("/v1/calls/{}/consult", p.call),
        r#"{"leg":"b","to":"1004"}"#,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("consulting"), "{}", r.body);

    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/complete-transfer", p.call),
        "{}",
    );
    let tr = p.lab.wait("call-transferred", &[("call", &p.call)]);
    assert_eq!(
        (tr.get("by"), tr.get("to"), tr.get("kind")),
        ("b", "1003", "attended"),
        "{}",
        tr.line
    );
    // The contact now hears the consulted party, and the other way round.
    assert_hears(&p.contact_rx, "the contact", CONSULTED_HZ, &[AGENT_HZ]);
    assert_hears(
        &consulted_rx,
        "the consulted party",
        CONTACT_HZ,
        &[AGENT_HZ],
    );
    let agent = p.agent.finish(&mut p.lab.sw);
    assert_eq!(
        agent.received("BYE ").len(),
        1,
        "the agent's leg is hung up"
    );

    let r = http::delete(p.lab.http(), &format!("/v1/calls/{}", p.call));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    p.lab.wait("call-ended", &[("call", &p.call)]);
    p.contact.finish(&mut p.lab.sw);
    consulted.finish(&mut p.lab.sw);
}

#[test]
fn cancel_consult_retrieves_the_contact() {
    let mut p = connected(Lab::start(CallConfig::default()));
    let (consulted, _consulted_rx, _tone) = consult(&mut p);
    assert_hears(&p.agent_rx, "the agent", CONSULTED_HZ, &[CONTACT_HZ]);
    // Alternate: back to the contact, the consulted party held.
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/alternate", p.call),
        "{}",
    );
    p.lab.wait(
        "call-alternated",
        &[("call", &p.call), ("talking", "contact")],
    );
    assert_hears(&p.agent_rx, "the agent", CONTACT_HZ, &[CONSULTED_HZ]);
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/cancel-consult", p.call),
        "{}",
    );
    p.lab.wait(
        "call-consult-ended",
        &[("call", &p.call), ("reason", "cancelled")],
    );
    let consulted = consulted.finish(&mut p.lab.sw);
    assert_eq!(
        consulted.received("BYE ").len(),
        1,
        "the consultation leg goes"
    );
    assert_hears(&p.agent_rx, "the agent", CONTACT_HZ, &[CONSULTED_HZ]);
    assert_hears(&p.contact_rx, "the contact", AGENT_HZ, &[CONSULTED_HZ]);
    let r = http::delete(p.lab.http(), &format!("/v1/calls/{}", p.call));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    p.lab.wait("call-ended", &[("call", &p.call)]);
    p.contact.finish(&mut p.lab.sw);
    p.agent.finish(&mut p.lab.sw);
}

#[test]
fn a_busy_consultation_leaves_contact_and_agent_talking() {
    let mut p = connected(Lab::start(CallConfig::default()));
    let busy = p.lab.phone("1004", "phone_busy", |s| s);
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/consult", p.call),
        r#"{"leg":"b","to":"1004"}"#,
    );
    let failed = p.lab.wait("call-consult-failed", &[("call", &p.call)]);
    assert_eq!(
        (failed.get("status"), failed.get("failure")),
        ("486", "busy"),
        "{}",
        failed.line
    );
    busy.finish(&mut p.lab.sw);
    assert_hears(&p.agent_rx, "the agent", CONTACT_HZ, &[]);
    assert_hears(&p.contact_rx, "the contact", AGENT_HZ, &[]);
    let s = p.lab.summary(&p.call);
    assert_eq!(s["legs"].as_array().map(Vec::len), Some(2), "{s}");
    let r = http::delete(p.lab.http(), &format!("/v1/calls/{}", p.call));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    p.lab.wait("call-ended", &[("call", &p.call)]);
    let contact = p.contact.finish(&mut p.lab.sw);
    let agent = p.agent.finish(&mut p.lab.sw);
    assert_eq!(contact.received("BYE ").len(), 1);
    assert_eq!(agent.received("BYE ").len(), 1);
}

#[test]
fn a_conference_of_three_each_hears_the_other_two_and_not_itself() {
    let mut p = connected(Lab::start(CallConfig::default()));
    let (consulted, consulted_rx, _tone) = consult(&mut p);
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/conference", p.call),
        "{}",
    );
    p.lab.wait("call-conferenced", &[("call", &p.call)]);
    for (who, sock, own, others) in [
        (
            "the contact",
            &p.contact_rx,
            CONTACT_HZ,
            [AGENT_HZ, CONSULTED_HZ],
        ),
        (
            "the agent",
            &p.agent_rx,
            AGENT_HZ,
            [CONTACT_HZ, CONSULTED_HZ],
        ),
        (
            "the consulted party",
            &consulted_rx,
            CONSULTED_HZ,
            [CONTACT_HZ, AGENT_HZ],
        ),
    ] {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        loop {
            let (x, n) = hear(sock, Duration::from_millis(600));
            let heard: Vec<f64> = others.iter().map(|&f| amplitude(&x, f)).collect();
            let itself = amplitude(&x, own);
            if heard.iter().all(|&a| a > HEARD) && itself < SILENT {
                break;
            }
            seen.push(format!(
                "{n} packets: others {heard:.3?}, itself {itself:.3}"
            ));
            assert!(
                Instant::now() < deadline,
                "{who} should hear {others:?} Hz and not {own} Hz:\n{}",
                seen.join("\n")
            );
        }
    }
    // The consulted party is removed: agent and contact talk again.
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/remove", p.call),
        r#"{"party":"consulted"}"#,
    );
    p.lab.wait(
        "call-consult-ended",
        &[("call", &p.call), ("reason", "removed")],
    );
    assert_hears(&p.agent_rx, "the agent", CONTACT_HZ, &[CONSULTED_HZ]);
    let consulted = consulted.finish(&mut p.lab.sw);
    assert_eq!(consulted.received("BYE ").len(), 1);
    let r = http::delete(p.lab.http(), &format!("/v1/calls/{}", p.call));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    p.lab.wait("call-ended", &[("call", &p.call)]);
    p.contact.finish(&mut p.lab.sw);
    p.agent.finish(&mut p.lab.sw);
}

#[test]
fn volume_changes_the_level_a_party_hears_by_the_requested_db() {
    // Without a consultation, `contact` is leg b (as on a web callback).
    volume_out_changes_what_the_party_hears("contact");
}

#[test]
fn volume_out_on_leg_a_changes_what_the_caller_hears() {
    // Without a consultation, `agent` is leg a.
    volume_out_changes_what_the_party_hears("agent");
}

/// An `out` gain of -6 dB on `party` (leg b "contact": 1002, whose endpoint
/// is `agent_rx`, hearing 1001's tone; leg a "agent": 1001, endpoint
/// `contact_rx`, hearing 1002's) lowers what it hears by 6 dB within 1 dB,
/// and leaves the other way untouched.
fn volume_out_changes_what_the_party_hears(party: &str) {
    let mut p = connected(Lab::start(CallConfig::default()));
    let (me, other, my_hz, other_hz) = if party == "contact" {
        (
            ("1002", &p.agent_rx),
            ("1001", &p.contact_rx),
            CONTACT_HZ,
            AGENT_HZ,
        )
    } else {
        (
            ("1001", &p.contact_rx),
            ("1002", &p.agent_rx),
            AGENT_HZ,
            CONTACT_HZ,
        )
    };
    let level = |sock: &UdpSocket, hz: f64| {
        let (x, n) = hear(sock, Duration::from_millis(600));
        (amplitude(&x, hz), n)
    };
    let (before, n) = level(me.1, my_hz);
    assert!(
        before > HEARD,
        "{} hears {}: {n} packets, {before:.3}",
        me.0,
        other.0
    );
    let (other_before, _) = level(other.1, other_hz);
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/volume", p.call),
        &format!(r#"{{"party":"{party}","direction":"out","db":-6}}"#),
    );
    p.lab.wait(
        "call-volume",
        &[("call", &p.call), ("party", party), ("db", "-6")],
    );
    // The room of two takes a few frames to settle: measure until steady (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let (after, n) = level(me.1, my_hz);
        let db = 20.0 * (after / before).log10();
        if (db + 6.0).abs() <= 1.0 {
            break;
        }
        seen.push(format!("{n} packets: {after:.3} ({db:.2} dB)"));
        assert!(
            Instant::now() < deadline,
            "{} should hear {} 6 dB lower (from {before:.3}):\n{}",
            me.0,
            other.0,
            seen.join("\n")
        );
    }
    // The other way is untouched, and nobody hears itself in the room of two.
    let (x, n) = hear(other.1, Duration::from_millis(600));
    let (heard, itself) = (amplitude(&x, other_hz), amplitude(&x, my_hz));
    assert!(
        (20.0 * (heard / other_before).log10()).abs() <= 1.0 && itself < SILENT,
        "{} hears {} as before ({other_before:.3}): {n} packets, {heard:.3}, itself {itself:.3}",
        other.0,
        me.0
    );
    let r = http::post(
        p.lab.http(),
        &format!("/v1/calls/{}/volume", p.call),
        r#"{"party":"agent","direction":"out","db":20}"#,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("\"db\""), "{}", r.body);
    let r = http::delete(p.lab.http(), &format!("/v1/calls/{}", p.call));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    p.lab.wait("call-ended", &[("call", &p.call)]);
    p.contact.finish(&mut p.lab.sw);
    p.agent.finish(&mut p.lab.sw);
}

const SUPERVISOR_HZ: f64 = 1630.0;

/// Waits (bounded) until `sock` hears every tone of `heard` and none of `silent`.
fn assert_mix(sock: &UdpSocket, who: &str, heard: &[f64], silent: &[f64]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let (x, n) = hear(sock, Duration::from_millis(600));
        let on: Vec<f64> = heard.iter().map(|&f| amplitude(&x, f)).collect();
        let off: Vec<f64> = silent.iter().map(|&f| amplitude(&x, f)).collect();
        if on.iter().all(|&a| a > HEARD) && off.iter().all(|&a| a < SILENT) {
            return;
        }
        seen.push(format!("{n} packets: heard {on:.3?}, silent {off:.3?}"));
        assert!(
            Instant::now() < deadline,
            "{who} should hear {heard:?} Hz and not {silent:?} Hz:\n{}",
            seen.join("\n")
        );
    }
}

/// A supervisor (1003) listens, whispers and barges. Without a
/// consultation the agent a whisper reaches is leg a: here 1001
/// (`contact_rx`), talking to 1002 (`agent_rx`).
#[test]
fn a_supervisor_listens_whispers_and_barges() {
    let mut p = connected(Lab::start(CallConfig::default()));
    let rtp = RtpEndpoint::bind();
    let sup = p
        .lab
        .phone("1003", "phone_answer", |s| s.rtp_port(rtp.port));
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/listen", p.call),
        r#"{"to":"1003"}"#,
    );
    p.lab
        .wait("call-supervised", &[("call", &p.call), ("mode", "listen")]);
    let relay = relay_of_phone(&sup, "1003");
    let sup_rx = rtp.sock.try_clone().unwrap();
    let _tone = ToneGuard::start(rtp, relay, SUPERVISOR_HZ);
    let (a, b) = (CONTACT_HZ, AGENT_HZ);
    // Listen: the supervisor hears both, nobody hears it.
    assert_mix(&sup_rx, "the supervisor", &[a, b], &[SUPERVISOR_HZ]);
    assert_mix(&p.contact_rx, "1001", &[b], &[SUPERVISOR_HZ, a]);
    assert_mix(&p.agent_rx, "1002", &[a], &[SUPERVISOR_HZ, b]);
    // A second supervisor is refused, naming the state.
    let r = http::post(
        p.lab.http(),
        &format!("/v1/calls/{}/listen", p.call),
        r#"{"to":"1004"}"#,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("supervised"), "{}", r.body);
    // Whisper: only leg a hears the supervisor.
    http::post_ok(p.lab.http(), &format!("/v1/calls/{}/whisper", p.call), "{}");
    p.lab
        .wait("call-supervised", &[("call", &p.call), ("mode", "whisper")]);
    assert_mix(&p.contact_rx, "1001", &[b, SUPERVISOR_HZ], &[a]);
    assert_mix(&p.agent_rx, "1002", &[a], &[SUPERVISOR_HZ, b]);
    // Barge: everyone hears everyone else.
    http::post_ok(p.lab.http(), &format!("/v1/calls/{}/barge", p.call), "{}");
    p.lab
        .wait("call-supervised", &[("call", &p.call), ("mode", "barge")]);
    assert_mix(&p.contact_rx, "1001", &[b, SUPERVISOR_HZ], &[a]);
    assert_mix(&p.agent_rx, "1002", &[a, SUPERVISOR_HZ], &[b]);
    assert_mix(&sup_rx, "the supervisor", &[a, b], &[SUPERVISOR_HZ]);
    // The supervisor is removed: the two talk as before.
    http::post_ok(
        p.lab.http(),
        &format!("/v1/calls/{}/remove", p.call),
        r#"{"party":"supervisor"}"#,
    );
    p.lab.wait("call-supervisor-left", &[("call", &p.call)]);
    let sup = sup.finish(&mut p.lab.sw);
    assert_eq!(sup.received("BYE ").len(), 1);
    assert_mix(&p.agent_rx, "1002", &[a], &[SUPERVISOR_HZ, b]);
    let invites = |phone: &SippBg| {
        phone
            .trace()
            .iter()
            .filter(|(rx, m)| *rx && m.starts_with("INVITE "))
            .count()
    };
    assert_eq!(
        (invites(&p.contact), invites(&p.agent)),
        (0, 1),
        "nobody is re-INVITEd (1002 got only its first INVITE)"
    );
    let r = http::delete(p.lab.http(), &format!("/v1/calls/{}", p.call));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    p.lab.wait("call-ended", &[("call", &p.call)]);
    p.contact.finish(&mut p.lab.sw);
    p.agent.finish(&mut p.lab.sw);
}
