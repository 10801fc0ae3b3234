//! Caller identity (RFC 3325 PAI, RFC 3323 privacy), headers passed between
//! legs (Diversion, History-Info) and RFC 7433 User-to-User.

use super::prack::invite_ext;
use super::*;

const TRUST: &str = r#"
[profiles.internal]
registrar = true
listen = [{ transport = "udp", address = "127.0.0.1:5060" }]
users = [{ username = "1001", password = "x" }, { username = "1002", password = "x" }, { username = "1003", password = "x" }]
[profiles.internal.calls]
session_expires_secs = 0
user_to_user = "{case};encoding=ascii;call={call}"
[profiles.internal.media]
rtp_port_min = 20000
rtp_port_max = 20099
[profiles.external]
listen = [{ transport = "udp", address = "127.0.0.1:5080" }]
peers = [
  { name = "cc", address = "127.0.0.1:5090", acl = ["10.0.0.0/8"], trusted = true, user_to_user = true },
  { name = "carrier", address = "127.0.0.1:5091", acl = ["192.168.0.0/16"] },
]
[profiles.external.calls]
session_expires_secs = 0
[profiles.external.media]
rtp_port_min = 20100
rtp_port_max = 20199
[[dialplan]]
match = "1[0-9]{3}"
to = "user"
[[dialplan]]
match = "9([0-9]{6,})"
to = "gateway"
gateway = "carrier"
number = "$1"
[[dialplan]]
match = "[0-9]{6,}"
to = "gateway"
gateway = "cc"
"#;

/// A trunk peer at `ip` calling 1002.
fn from_peer(ip: [u8; 4]) -> Source {
    Source {
        profile: ProfileId(0),
        transport: TransportKind::Udp,
        local: "127.0.0.1:5080".parse().unwrap(),
        remote: SocketAddr::from((ip, 5060)),
        connection: None,
    }
}

const PAI: &str = "P-Asserted-Identity: \"Jane Doe\" <sip:+15550001@cc.example>";

#[test]
fn trusted_peer_pai_is_the_caller_the_agent_sees() {
    let mut w = world_with(TRUST);
    w.receive(
        invite_ext(
            "1002",
            7001,
            &[
                PAI,
                "Diversion: <sip:5550100@cc.example>;reason=unconditional",
            ],
            true,
        ),
        from_peer([10, 0, 0, 5]),
    );
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.starts_with("call-started") && e.contains("from=+15550001")),
        "{ev:?}"
    );
    let (_, to_phone, _) = w.out.sent[0].clone();
    let from = to_phone.header_value("From").unwrap();
    assert!(from.contains("\"Jane Doe\" <sip:+15550001@"), "{from}");
    // A phone is outside the Trust Domain: no PAI; Diversion is passed.
    assert!(to_phone.header_value("P-Asserted-Identity").is_none());
    assert_eq!(
        to_phone.header_value("Diversion"),
        Some("<sip:5550100@cc.example>;reason=unconditional")
    );
}

#[test]
fn untrusted_peer_pai_is_removed_and_not_believed() {
    let mut w = world_with(TRUST);
    w.receive(
        invite_ext("1002", 7001, &[PAI], true),
        from_peer([192, 168, 1, 1]),
    );
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.starts_with("call-started") && e.contains("from=1001")),
        "the From user, not the PAI: {ev:?}"
    );
    let (_, to_phone, _) = w.out.sent[0].clone();
    assert!(to_phone
        .header_value("From")
        .unwrap()
        .contains("<sip:1001@"));
    assert!(to_phone.header_value("P-Asserted-Identity").is_none());
}

#[test]
fn pai_goes_to_trusted_peers_only_and_privacy_anonymises_toward_the_others() {
    let mut w = world_with(TRUST);
    // A phone calls the trusted platform: the switch asserts the user.
    w.receive(
        invite_ext(
            "5551234",
            6001,
            &["Privacy: id", "History-Info: <sip:5551234@pbx>;index=1"],
            true,
        ),
        source(6001),
    );
    let (_, to_cc, d) = w.out.sent.last().unwrap().clone();
    assert_eq!(d.remote.port(), 5090);
    assert_eq!(
        to_cc.header_value("P-Asserted-Identity"),
        Some("<sip:1001@127.0.0.1:5060>")
    );
    assert_eq!(to_cc.header_value("Privacy"), Some("id"));
    assert!(
        to_cc.header_value("From").unwrap().contains("<sip:1001@"),
        "not anonymised toward a trusted peer"
    );
    assert_eq!(
        to_cc.header_value("History-Info"),
        Some("<sip:5551234@pbx>;index=1")
    );
    // The same caller toward the untrusted carrier: anonymous, no PAI, no Privacy.
    w.receive(
        invite_ext("95551234", 6001, &["Privacy: id", PAI], true),
        source(6001),
    );
    let (_, to_carrier, d) = w.out.sent.last().unwrap().clone();
    assert_eq!(d.remote.port(), 5091);
    assert_eq!(
        to_carrier
            .header_value("From")
            .map(|f| f.split(";tag").next().unwrap().to_string()),
        Some("\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_string())
    );
    assert!(to_carrier.header_value("P-Asserted-Identity").is_none());
    assert!(to_carrier.header_value("Privacy").is_none());
    // Privacy: none changes nothing.
    w.receive(
        invite_ext("95551234", 6011, &["Privacy: none"], true),
        source(6001),
    );
    let (_, plain, _) = w.out.sent.last().unwrap().clone();
    assert!(plain.header_value("From").unwrap().contains("<sip:1001@"));
}

#[test]
fn user_to_user_carries_the_case_on_both_legs_and_passes_a_peers_own() {
    let mut w = world_with(TRUST);
    w.calls
        .handle_command(
            w.now,
            &mut w.out,
            CallCommand::Originate(Originate {
                a: "1003".into(),
                b: "5551234".into(),
                interaction: Some("cb-77".into()),
                headers: vec![("X-Case-Id".into(), "CASE-9".into())],
                ..Default::default()
            }),
        )
        .unwrap();
    let (_, agent_leg, _) = w.out.sent[0].clone();
    let uui = agent_leg.header_value("User-to-User").unwrap();
    assert!(uui.starts_with("CASE-9;encoding=ascii;call="), "{uui}");
    w.reply(0, 200, "agent", true);
    let (_, contact_leg, d) = w.out.sent.last().unwrap().clone();
    assert_eq!(d.remote.port(), 5090);
    // `true`: the case reference hex-encoded.
    assert_eq!(
        contact_leg.header_value("User-to-User"),
        Some(format!("{};encoding=hex", hex::encode("CASE-9")).as_str())
    );
    // A UUI from the (untrusted) carrier passes to the phone... unless the
    // phone's profile writes its own: then the switch's replaces it.
    w.receive(
        invite_ext(
            "1002",
            7001,
            &["User-to-User: 0badc0de;encoding=hex", "X-Case-Id: K1"],
            true,
        ),
        from_peer([192, 168, 1, 1]),
    );
    let (_, to_phone, _) = w.out.sent.last().unwrap().clone();
    let uuis = to_phone.header_values("User-to-User");
    assert_eq!(uuis.len(), 1, "{to_phone}");
    assert!(uuis[0].starts_with("K1;encoding=ascii"), "{uuis:?}");
}

#[test]
fn a_peers_user_to_user_passes_where_nothing_is_configured() {
    let mut w = world();
    w.receive(
        invite_ext("1002", 7001, &["User-to-User: 0badc0de;encoding=hex"], true),
        Source {
            profile: ProfileId(0),
            ..from_peer([10, 0, 0, 5])
        },
    );
    let (_, to_phone, _) = w.out.sent[0].clone();
    assert_eq!(
        to_phone.header_value("User-to-User"),
        Some("0badc0de;encoding=hex")
    );
}

/// An origination's `caller_id_name` is the display name of the contact
/// leg's From (and not of the agent leg's); quotes, backslashes and control
/// characters never reach the header.
#[test]
fn origination_caller_id_name_is_the_contact_legs_display_name() {
    let mut w = world();
    w.calls
        .handle_command(
            w.now,
            &mut w.out,
            CallCommand::Originate(Originate {
                a: "1003".into(),
                b: "5551234".into(),
                caller_id: Some("+15550100".into()),
                caller_id_name: Some("Acme \"Support\"\\\r\n".into()),
                ..Default::default()
            }),
        )
        .unwrap();
    let (_, a_inv, _) = w.out.sent[0].clone();
    let a_from = a_inv.header_value("From").unwrap().to_string();
    assert!(!a_from.contains("Acme"), "{a_from}");
    w.reply(0, 200, "agent", true);
    let (_, b_inv, _) = w.out.sent.last().unwrap().clone();
    let from = b_inv.header_value("From").unwrap();
    assert!(
        from.starts_with("\"Acme Support\" <sip:+15550100@"),
        "{from}"
    );
}
