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
//!   is up with a successful last ping in the API.

mod common;
#[path = "interop/mod.rs"]
mod interop;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::sippbg::{header, Sipp};
use common::{free_port, Switch, EVENT};
use interop::kamailio::Kamailio;
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
