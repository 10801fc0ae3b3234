//! Kamailio 5.6 as an edge proxy in front of the switch (shipped
//! configuration): a baresip phone registers through it (Kamailio adds Path,
//! RFC 3327, and Record-Routes), another registers directly. Calls both
//! ways: the switch reaches the proxied phone through its Path, in-dialog
//! requests (ACK, BYE) follow the Record-Route, audio flows both ways.

mod common;
#[path = "interop/mod.rs"]
mod interop;

use std::net::SocketAddr;

use common::{Switch, EVENT};
use interop::baresip::{account, shipped, Answer, Phone, WAIT};
use interop::kamailio::Kamailio;
use interop::shipped::{udp_addr, PASSWORD};

const DIRECT: &str = "1001";
const PROXIED: &str = "1002";

fn internal(sw: &Switch) -> SocketAddr {
    udp_addr(sw, "internal")
}

/// The switch, the proxy, a phone registered directly and one registered
/// through the proxy (its outbound proxy).
fn setup() -> (Switch, Kamailio, Phone, Phone) {
    let mut sw = shipped().start();
    let k = Kamailio::start();
    let direct = Phone::registered(DIRECT, PASSWORD, internal(&sw), 440, Answer::Manual);
    let mut proxied = Phone::start(PROXIED, 1000);
    proxied.add_account(&account(
        PROXIED,
        PASSWORD,
        internal(&sw),
        600,
        Answer::Manual,
        &format!(";outbound=\"{}\"", k.uri()),
    ));
    proxied.wait_event("REGISTER_OK", WAIT);
    k.wait_relayed(&format!("REGISTER sip:{}", internal(&sw)), WAIT);
    let reg = sw.await_event("registered", &[("user", PROXIED)], EVENT);
    assert!(
        reg.get("contact").contains(&proxied.sip.to_string()),
        "{reg:?}"
    );
    (sw, k, direct, proxied)
}

fn assert_two_way(a: &Phone, b: &Phone) {
    let (ma, mb) = (a.mark(), b.mark());
    a.assert_hears(ma, b.tone, 2.0);
    b.assert_hears(mb, a.tone, 2.0);
}

/// The direct phone calls the proxied one: the switch sends the INVITE to
/// Kamailio with the Path as Route; the ACK and the BYE go the same way.
#[test]
fn direct_phone_calls_phone_behind_the_proxy() {
    let (mut sw, k, mut direct, mut proxied) = setup();
    direct.dial(&format!("sip:{PROXIED}@{}", internal(&sw)));
    proxied.wait_event("CALL_INCOMING", WAIT);
    let contact_user = format!("INVITE sip:{PROXIED}-");
    k.wait_relayed(&contact_user, WAIT);
    direct.wait_event("CALL_RINGING", WAIT);
    proxied.answer();
    proxied.wait_event("CALL_ESTABLISHED", WAIT);
    direct.wait_event("CALL_ESTABLISHED", WAIT);
    // The switch's ACK to the 2xx followed the Record-Route.
    k.wait_relayed(&format!("ACK sip:{PROXIED}-"), WAIT);
    let started = sw.await_event("call-started", &[("to", PROXIED)], EVENT);
    let call = started.get("call").to_string();
    sw.await_event("call-bridged", &[("call", &call)], EVENT);
    assert_two_way(&direct, &proxied);

    direct.hangup();
    direct.wait_event("CALL_CLOSED", WAIT);
    k.wait_relayed(&format!("BYE sip:{PROXIED}-"), WAIT);
    proxied.wait_event("CALL_CLOSED", WAIT);
    sw.await_event("call-ended", &[("call", &call)], EVENT);
}

/// The proxied phone calls the direct one: its INVITE reaches the switch
/// from the proxy's address, is challenged (407) and admitted by digest;
/// its BYE follows the Record-Route back through the proxy.
#[test]
fn phone_behind_the_proxy_calls_direct_phone() {
    let (mut sw, k, mut direct, mut proxied) = setup();
    proxied.dial(&format!("sip:{DIRECT}@{}", internal(&sw)));
    direct.wait_event("CALL_INCOMING", WAIT);
    proxied.wait_event("CALL_RINGING", WAIT);
    assert!(
        proxied.output().contains("SIP/2.0 407"),
        "the proxied caller was not challenged"
    );
    direct.answer();
    direct.wait_event("CALL_ESTABLISHED", WAIT);
    proxied.wait_event("CALL_ESTABLISHED", WAIT);
    let started = sw.await_event("call-started", &[("to", DIRECT)], EVENT);
    assert_eq!(started.get("from"), PROXIED, "{started:?}");
    let call = started.get("call").to_string();
    sw.await_event("call-bridged", &[("call", &call)], EVENT);
    assert_two_way(&direct, &proxied);

    proxied.hangup();
    proxied.wait_event("CALL_CLOSED", WAIT);
    k.wait_relayed("BYE sip:switchback@", WAIT);
    direct.wait_event("CALL_CLOSED", WAIT);
    sw.await_event("call-ended", &[("call", &call)], EVENT);
}
