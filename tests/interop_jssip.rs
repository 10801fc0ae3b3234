//! JsSIP 3.13 (npm `jssip`) in Debian's headless Chromium against the real
//! switch on its shipped configuration plus a `ws` listener (RFC 7118): the
//! browser registers over WebSocket with digest (its page is served from a
//! loopback origin, which the default WebSocket policy allows), a SIPp
//! phone registered over UDP calls it and the INVITE reaches the page down
//! the browser's WebSocket; the page answers, the browser refuses the plain
//! RTP/AVP offer (the switch has no WebRTC media yet) and JsSIP's 488 comes
//! back through the switch to SIPp. The browser then unregisters, registers
//! again, and is closed: its binding goes with its WebSocket.

mod common;
#[path = "interop/mod.rs"]
mod interop;

use common::sippbg::Sipp;
use common::{free_port, EVENT};
use interop::jssip::{Browser, WAIT};
use interop::shipped::{internal, listener, Shipped, PASSWORD, REALM};

const TCP: &str = "{ transport = \"tcp\", address = \"127.0.0.1:0\" },";

#[test]
fn jssip_in_chromium_registers_over_ws_gets_a_call_from_sipp_and_unregisters() {
    let mut sw = Shipped::new()
        .edit(
            "internal.toml",
            TCP,
            &format!("{TCP}\n  {{ transport = \"ws\", address = \"127.0.0.1:0\" }},"),
        )
        .start();
    let ws = listener(&sw, "internal", "ws");
    let mut browser = Browser::start(ws, &format!("sip:1001@{REALM}"), PASSWORD);

    // Registration over WebSocket, digest included.
    browser.register();
    let registered = browser.wait("registered", WAIT);
    let contact = registered["contact"].as_str().unwrap_or("");
    assert!(contact.contains(".invalid;transport=ws"), "{registered}");
    let event = sw.wait_event("registered", &[("user", "1001")], EVENT);
    assert!(
        event.get("contact").contains(".invalid;transport=ws"),
        "{}",
        event.line
    );

    // A SIPp phone over UDP calls the browser.
    let port = free_port();
    Sipp::new("register", internal(&sw))
        .port(port)
        .service("1002")
        .arg("-au")
        .arg("1002")
        .arg("-ap")
        .arg(PASSWORD)
        .run()
        .assert_ok(&mut sw);
    let caller = Sipp::new("call", internal(&sw))
        .port(port)
        .service("1001")
        .key("from_user", "1002")
        .spawn();
    let invite = browser.wait("invite", WAIT);
    let ruri = invite["ruri"].as_str().unwrap_or("");
    assert!(
        ruri.contains(".invalid") && ruri.contains("transport=ws"),
        "{invite}"
    );
    assert!(
        invite["via"]
            .as_str()
            .unwrap_or("")
            .starts_with("SIP/2.0/WS "),
        "{invite}"
    );
    assert!(
        invite["from"].as_str().unwrap_or("").contains("1002"),
        "{invite}"
    );
    assert!(
        invite["sdp"].as_str().unwrap_or("").contains("m=audio"),
        "{invite}"
    );
    let failed = browser.wait("call-failed", WAIT);
    assert_eq!(failed["cause"], "WebRTC Error", "{failed}");
    let run = caller.finish(&mut sw);
    assert_eq!(run.final_status(), Some(488), "{}", run.describe());
    assert!(
        !run.received("SIP/2.0 180").is_empty(),
        "JsSIP's ringing reached SIPp\n{}",
        run.describe()
    );

    // Unregister, as a person closing the phone would.
    browser.unregister();
    browser.wait("unregistered", WAIT);
    sw.wait_event("unregistered", &[("user", "1001")], EVENT);

    // Registered again, then the browser goes away without a word: the
    // binding goes with its WebSocket.
    browser.register();
    browser.wait("registered", WAIT);
    sw.wait_event("registered", &[("user", "1001")], EVENT);
    // Kept for a reviewer under target/tmp/screenshots/ (not committed).
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    let shot = shots.join("jssip-registered.png");
    browser.screenshot(&shot);
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0),
        "no screenshot"
    );
    browser.quit();
    let closed = sw.wait_event("binding-closed", &[("user", "1001")], EVENT);
    assert!(
        closed.get("contact").contains(".invalid;transport=ws"),
        "{}",
        closed.line
    );
}
