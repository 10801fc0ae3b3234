//! The shipped configuration starts as the interop harness writes it, and
//! its listeners are where the harness says.

mod common;
#[path = "interop/mod.rs"]
mod interop;

use interop::shipped::{listener, Shipped};

#[test]
fn shipped_configuration_starts_with_both_profiles() {
    let sw = Shipped::new().start();
    for (profile, transport) in [
        ("internal", "udp"),
        ("internal", "tcp"),
        ("external", "udp"),
        ("external", "tcp"),
    ] {
        let a = listener(&sw, profile, transport);
        assert!(
            a.ip().is_loopback() && a.port() != 0,
            "{profile} {transport}: {a}"
        );
    }
    assert!(sw.http_addr().is_some(), "no HTTP listener");
}
