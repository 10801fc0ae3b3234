//! Contacts registered through an edge proxy (RFC 3327 Path): requests to
//! them carry the Path as a preloaded route set and go to its first hop;
//! calls from them are challenged, the proxy's address proving nothing.

use super::*;

/// 1003 registered through a proxy at 127.0.0.1:5070 (its only binding).
fn behind_proxy(w: &mut World, path: &[&str]) {
    let mut b = Binding::new(
        "1003",
        "sip:1003-abc@10.0.0.9:5062",
        source(5070),
        w.now + Duration::from_secs(600),
    );
    b.path = path.iter().map(|p| p.to_string()).collect();
    w.out.bindings.insert("1003".into(), vec![b]);
}

#[test]
fn invite_to_a_contact_with_a_path_is_routed_by_it() {
    let mut w = world();
    let path = [
        "<sip:127.0.0.1:5070;lr;received=sip:10.0.0.9:5062>",
        "<sip:core.example;lr>",
    ];
    behind_proxy(&mut w, &path);
    w.receive(invite("1003", 6001), source(6001));
    let (_, inv, dest) = w.out.sent.last().unwrap().clone();
    assert_eq!(inv.method, Method::Invite);
    // Loose routing: the Request-URI stays the contact, the Path goes in
    // Route in order, and the request goes to the first hop.
    assert_eq!(inv.uri.to_string(), "sip:1003-abc@10.0.0.9:5062");
    assert_eq!(inv.header_values("Route"), path);
    assert_eq!(dest.remote, "127.0.0.1:5070".parse().unwrap());
    // CANCEL follows the INVITE's route (RFC 3261 §9.1).
    let cancel = sip::cancel_for(&inv);
    assert_eq!(cancel.header_values("Route"), path);
}

#[test]
fn first_path_hop_elsewhere_is_sent_to_as_written() {
    let mut w = world();
    behind_proxy(&mut w, &["<sip:192.0.2.60:5080;lr;transport=tcp>"]);
    w.receive(invite("1003", 6001), source(6001));
    let (_, _, dest) = w.out.sent.last().unwrap().clone();
    assert_eq!(dest.remote, "192.0.2.60:5080".parse().unwrap());
    assert_eq!(dest.transport, TransportKind::Tcp);
    assert_eq!(dest.connection, None);

    // A first hop named by a host: the REGISTER's source stands in for it.
    let mut w = world();
    behind_proxy(&mut w, &["<sip:edge.example.com;lr>"]);
    w.receive(invite("1003", 6001), source(6001));
    let (_, inv, dest) = w.out.sent.last().unwrap().clone();
    assert_eq!(dest.remote, source(5070).remote);
    assert_eq!(inv.header_values("Route"), ["<sip:edge.example.com;lr>"]);
}

#[test]
fn caller_registered_through_a_proxy_is_challenged() {
    let mut w = world();
    // 1001's binding came through the proxy at 5070, like everyone's there.
    let mut b = Binding::new(
        "1001",
        "sip:1001-x@10.0.0.7:5062",
        source(5070),
        w.now + Duration::from_secs(600),
    );
    b.path = vec!["<sip:127.0.0.1:5070;lr>".into()];
    w.out.bindings.insert("1001".into(), vec![b]);
    let first = invite("1002", 5070);
    w.receive(first.clone(), source(5070));
    assert_eq!(w.last_answer_code(), 407);
    assert!(w.out.sent.is_empty(), "nobody rings before authentication");
    let challenge = w.out.answers.last().unwrap().1.clone();
    let again = crate::call::digest::answer_challenge(&first, &challenge, "1001", "x").unwrap();
    w.receive(again, source(5070));
    assert_eq!(w.out.sent.len(), 2, "both contacts of 1002 ring");
}
