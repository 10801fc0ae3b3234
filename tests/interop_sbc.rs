//! Kamailio 5.6 as a contact-center platform's SBC in front of the switch's
//! trunk profile (shipped configuration, `fixtures/kamailio/sbc.cfg`): the
//! platform side is a SIPp behind Kamailio, which the switch knows as its
//! trunk peer `local-trunk` (127.0.0.1 in its ACL; its address when the test
//! points the peer at Kamailio).
//!
//! - a platform call through Kamailio to a registered phone: answered, ACK
//!   and BYE follow Kamailio's Record-Route;
//! - a phone's call to a number, sent by the shipped dial plan to
//!   `local-trunk`, i.e. through Kamailio to the platform: answered, hung up;
//! - the switch's OPTIONS pings to the peer answered by Kamailio: the peer
//!   is up with a successful last ping in the API;
//! - a pjsua2 endpoint of the platform behind Kamailio calling a pjsua2
//!   phone registered to the switch, and called back by it through the
//!   shipped dial plan: each hears the other's tone (audio checked by
//!   frequency both ways, the switch relaying it).

mod common;
#[path = "interop/mod.rs"]
mod interop;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::sippbg::{header, Sipp};
use common::{free_port, Switch, EVENT};
use interop::kamailio::Kamailio;
use interop::pjsua::{self, Phone};
use interop::shipped::{api_ok, internal, udp_addr, Shipped, PASSWORD};

const WAIT: Duration = Duration::from_secs(10);

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Registers `user` from `port` (SIPp register.xml) and waits for the event.
fn register(sw: &mut Switch, user: &str, port: u16) {
    let run = Sipp::new("register", internal(sw))
        .port(port)
        .service(user)
        .arg("-au")
        .arg(user)
        .arg("-ap")
        .arg(PASSWORD)
        .run();
    run.assert_ok(sw);
    let port_s = port.to_string();
    let ev = sw.await_event("registered", &[("user", user)], EVENT);
    assert!(ev.get("contact").contains(&port_s), "{ev:?}");
}

#[test]
fn platform_call_through_the_sbc_reaches_a_registered_phone() {
    let mut sw = Shipped::new().start();
    let phone_port = free_port();
    register(&mut sw, "1001", phone_port);
    let phone = Sipp::new("phone_answer", internal(&sw))
        .port(phone_port)
        .service("1001")
        .spawn();
    phone.wait_bound();
    let caller_port = free_port();
    let k = Kamailio::start_sbc(free_port(), udp_addr(&sw, "external"), local(caller_port));

    let caller = Sipp::new("trunk_caller", k.addr)
        .port(caller_port)
        .service("1001")
        .run();
    caller.assert_ok(&mut sw);
    // The 200 the platform got names Kamailio in its Record-Route.
    let ok = caller
        .received("SIP/2.0 200")
        .into_iter()
        .find(|m| common::sippbg::cseq_method(m).eq_ignore_ascii_case("INVITE"))
        .expect("a 200 to the INVITE");
    let rr = header(&ok, "Record-Route").unwrap_or_default();
    assert!(
        rr.contains(&k.addr.to_string()),
        "Record-Route {rr:?} does not name Kamailio {}",
        k.addr
    );
    phone.finish(&mut sw);

    let started = sw.await_event("call-started", &[("to", "1001")], EVENT);
    let call = started.get("call").to_string();
    sw.await_event("call-ended", &[("call", &call)], EVENT);
    k.wait_relayed("INVITE sip:1001@", WAIT);
    k.wait_relayed("ACK ", WAIT);
    let bye = k.wait_relayed("BYE ", WAIT);
    assert!(
        bye.contains(&format!("from 127.0.0.1:{caller_port}")),
        "the platform's BYE came through Kamailio: {bye}"
    );
}

#[test]
fn phone_call_to_a_number_goes_through_the_sbc_to_the_platform() {
    let k_port = free_port();
    let mut sw = Shipped::new().trunk(local(k_port)).start();
    let platform = Sipp::new("trunk_gateway", udp_addr(&sw, "external"))
        .service("gw")
        .arg("-d")
        .arg("0")
        .spawn();
    platform.wait_bound();
    let k = Kamailio::start_sbc(k_port, udp_addr(&sw, "external"), local(platform.port));
    let phone_port = free_port();
    register(&mut sw, "1001", phone_port);

    // From the address it registered from: admitted without a challenge.
    let caller = Sipp::new("call", internal(&sw))
        .port(phone_port)
        .service("5551234")
        .key("from_user", "1001")
        .set("hangup_ms", 500)
        .run();
    caller.assert_ok(&mut sw);
    let platform_run = platform.finish(&mut sw);
    let invite = platform_run
        .received("INVITE ")
        .into_iter()
        .next()
        .expect("the platform got the INVITE");
    assert!(invite.starts_with("INVITE sip:5551234@"), "{invite}");

    let started = sw.await_event("call-started", &[("from", "1001")], EVENT);
    let call = started.get("call").to_string();
    sw.await_event("call-ended", &[("call", &call)], EVENT);
    k.wait_relayed("INVITE sip:5551234@", WAIT);
    k.wait_relayed("ACK ", WAIT);
    let bye = k.wait_relayed("BYE ", WAIT);
    assert!(
        bye.contains(&format!("from {}", udp_addr(&sw, "external"))),
        "the switch's BYE came through Kamailio: {bye}"
    );
}

#[test]
fn the_switchs_pings_are_answered_by_the_sbc() {
    let k_port = free_port();
    let mut sw = Shipped::new()
        .trunk(local(k_port))
        .edit(
            "external.toml",
            "acl = [\"127.0.0.1/32\"]",
            "acl = [\"127.0.0.1/32\"]\nping_interval_secs = 1",
        )
        .start();
    let k = Kamailio::start_sbc(k_port, udp_addr(&sw, "external"), local(free_port()));
    let deadline = Instant::now() + WAIT;
    let peer = loop {
        let p = api_ok(&sw, "GET", "/v1/peers/local-trunk", None);
        if p["last_ping"]["ok"] == true && p["state"] == "up" {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "local-trunk not up with an answered ping in {WAIT:?}: {p}\n{}\nkamailio saw: {:#?}",
            sw.report(),
            k.relayed()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(peer["ping_interval_secs"], 1, "{peer}");
    let options = k.wait_relayed("OPTIONS ", WAIT);
    assert!(
        options.contains(&format!("from {}", udp_addr(&sw, "external"))),
        "the ping came from the switch's trunk profile: {options}"
    );
}

/// The platform endpoint's and the phone's tones, Hz (neither a harmonic of the other).
const TONE_PLATFORM: f64 = 1300.0;
const TONE_PHONE: f64 = 500.0;
/// Seconds of audio recorded for one direction's check.
const LISTEN: f64 = 1.5;

/// Both ends hear each other's tone.
fn audio_both_ways(x: &mut Phone, xc: i64, y: &mut Phone, yc: i64, when: &str) {
    let (tx, ty) = (x.tone, y.tone);
    x.assert_hears(
        xc,
        ty,
        LISTEN,
        &format!("{when}: {} hears {}", x.name, y.name),
    );
    y.assert_hears(
        yc,
        tx,
        LISTEN,
        &format!("{when}: {} hears {}", y.name, x.name),
    );
}

/// `caller` calls `uri`, `callee` is offered it and answers; both confirmed.
fn connect(caller: &mut Phone, uri: &str, callee: &mut Phone) -> (i64, i64) {
    let a = caller.call(uri);
    let (b, _) = callee.incoming();
    callee.answer(b, 200);
    caller.wait_state(a, "confirmed");
    callee.wait_state(b, "confirmed");
    (a, b)
}

#[test]
fn pjsua_platform_endpoint_behind_the_sbc_calls_a_phone_and_back_with_audio() {
    // The platform's endpoint first: the SBC forwards the switch's calls to it.
    let mut platform = Phone::start("platform", TONE_PLATFORM);
    platform.listen_as("platform");
    let k_port = free_port();
    let mut sw = Shipped::new().trunk(local(k_port)).start();
    let k = Kamailio::start_sbc(k_port, udp_addr(&sw, "external"), platform.addr());
    let mut phone = Phone::start("1001", TONE_PHONE);
    phone.register_ok("1001", PASSWORD, internal(&sw));
    sw.await_event("registered", &[("user", "1001")], EVENT);

    // Platform -> SBC -> switch's trunk profile -> the phone.
    let (pc, hc) = connect(&mut platform, &pjsua::uri("1001", k.addr), &mut phone);
    let started = sw.await_event("call-started", &[("to", "1001")], EVENT);
    let call = started.get("call").to_string();
    sw.await_event("call-bridged", &[("call", &call)], EVENT);
    k.wait_relayed("INVITE sip:1001@", WAIT);
    audio_both_ways(&mut platform, pc, &mut phone, hc, "platform to phone");
    platform.hangup(pc);
    phone.wait_state(hc, "disconnected");
    sw.await_event("call-ended", &[("call", &call)], EVENT);
    let bye = k.wait_relayed("BYE ", WAIT);
    assert!(
        bye.contains(&format!("from {}", platform.addr())),
        "the platform's BYE came through Kamailio: {bye}"
    );

    // The phone dials a number: the shipped dial plan sends it to
    // local-trunk, i.e. through the SBC to the platform's endpoint.
    let (hc, pc) = connect(
        &mut phone,
        &pjsua::uri("5551234", internal(&sw)),
        &mut platform,
    );
    let started = sw.await_event(
        "call-started",
        &[("from", "1001"), ("to", "5551234")],
        EVENT,
    );
    let call = started.get("call").to_string();
    sw.await_event("call-bridged", &[("call", &call)], EVENT);
    k.wait_relayed("INVITE sip:5551234@", WAIT);
    audio_both_ways(&mut phone, hc, &mut platform, pc, "phone to platform");
    phone.hangup(hc);
    platform.wait_state(pc, "disconnected");
    sw.await_event("call-ended", &[("call", &call)], EVENT);
    // The switch's BYE toward the platform went through the SBC too.
    let from_switch = format!("from {}", udp_addr(&sw, "external"));
    let deadline = Instant::now() + WAIT;
    while !k
        .relayed()
        .iter()
        .any(|l| l.starts_with("BYE ") && l.contains(&from_switch))
    {
        assert!(
            Instant::now() < deadline,
            "no BYE {from_switch} through Kamailio in {WAIT:?}: {:#?}",
            k.relayed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
