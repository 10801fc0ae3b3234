//! Call transfer through the switch: blind (REFER to a user) with SIPp,
//! attended (REFER with Replaces naming a second dialog) with the raw UA in
//! `common::ua`, since one SIPp process holds one dialog, and blind by the
//! switch on an API command.

mod common;

use std::time::Duration;

use common::calls::{CallConfig, Lab};
use common::rtp::RtpEndpoint;
use common::sippbg::{body, header, sdp_audio};
use common::ua::{replaces_param, Ua};
use common::{http, EVENT};

#[test]
fn blind_transfer() {
    let mut lab = Lab::start(CallConfig::default());
    // 1002: the transferee, stays until the switch hangs it up.
    let transferee = lab.phone("1002", "phone_answer", |s| s);
    // 1003: the target, hangs up 1.5 s after answering.
    let target = lab.phone("1003", "phone_answer", |s| s.set("hangup_ms", 1500));
    let transferor = lab
        .caller("1001", "1002", "call_refer")
        .key("refer_to", "1003")
        .set("refer_ms", 300)
        .spawn();
    let call = lab.call_started(&[("from", "1001"), ("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    let tr = lab.wait("call-transferred", &[("call", &call), ("by", "a")]);
    assert_eq!(tr.get("to"), "1003", "{}", tr.line);
    assert_eq!(tr.get("kind"), "blind", "{}", tr.line);
    let a = transferor.finish(&mut lab.sw);
    let c = target.finish(&mut lab.sw);
    let b = transferee.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call)]);

    // The transferor saw 202, NOTIFY sipfrag 100 ... 200, and was hung up by the switch.
    let notifies = a.received("NOTIFY ");
    assert!(notifies.len() >= 2, "NOTIFYs: {}", notifies.len());
    assert!(
        body(&notifies[0]).starts_with("SIP/2.0 100"),
        "first sipfrag: {}",
        notifies[0]
    );
    let last = notifies.last().unwrap();
    assert!(
        body(last).starts_with("SIP/2.0 200"),
        "final sipfrag: {last}"
    );
    assert!(
        header(last, "Subscription-State")
            .unwrap_or("")
            .starts_with("terminated"),
        "{last}"
    );
    assert_eq!(
        a.received("BYE ").len(),
        1,
        "the switch hangs up the transferor:\n{}",
        a.messages
    );
    // The target was called by the switch, presenting the transferee (or the original caller).
    let inv_c = &c.received("INVITE ")[0];
    assert!(inv_c.starts_with("INVITE sip:1003@"), "{inv_c}");
    // The transferee ended with the target's hang-up.
    assert_eq!(b.received("BYE ").len(), 1);
}

#[test]
fn attended_transfer() {
    let mut lab = Lab::start(CallConfig::default());
    // 1002 and 1003 answer; 1002 hangs up 4 s after answering, which must then end
    // the transferred call toward 1003.
    let b_phone = lab.phone("1002", "phone_answer", |s| s.set("hangup_ms", 4000));
    let c_phone = lab.phone("1003", "phone_answer", |s| s);
    let port = lab.register("1001");
    let mut ua = Ua::bind(port, "1001", lab.internal());
    ua.rtp_port_hint = 4000;

    let mut d1 = ua.invite("1002", 4000);
    let call1 = lab.call_started(&[("from", "1001"), ("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call1)]);
    let d2 = ua.invite("1003", 4002);
    let call2 = lab.call_started(&[("from", "1001"), ("to", "1003")]);
    lab.wait("call-bridged", &[("call", &call2)]);

    let refer_to = format!(
        "<sip:1003@{}?Replaces={}>",
        lab.internal(),
        replaces_param(&d2)
    );
    let r = ua.request(
        &mut d1,
        "REFER",
        &format!("Refer-To: {refer_to}\r\nReferred-By: <sip:1001@127.0.0.1>\r\n"),
        None,
    );
    assert!(r.starts_with("SIP/2.0 202"), "REFER answered:\n{r}");

    let tr = lab.wait("call-transferred", &[("by", "a"), ("kind", "attended")]);
    assert!(
        tr.get("call") == call1 || tr.get("call") == call2,
        "{}",
        tr.line
    );
    // Both of the transferor's legs are hung up by the switch.
    let t = Duration::from_secs(10);
    ua.wait_request("BYE on the first dialog", t, |m| {
        m.starts_with("BYE ") && header(m, "Call-ID") == Some(d1.call_id.as_str())
    });
    ua.wait_request("BYE on the second dialog", t, |m| {
        m.starts_with("BYE ") && header(m, "Call-ID") == Some(d2.call_id.as_str())
    });
    let sipfrags: Vec<String> = ua
        .log
        .iter()
        .filter(|m| m.starts_with("NOTIFY "))
        .map(|m| body(m).to_string())
        .collect();
    assert!(
        sipfrags.iter().any(|f| f.starts_with("SIP/2.0 200")),
        "a NOTIFY with sipfrag 200: {sipfrags:?}"
    );

    // 1002 and 1003 now talk; 1002's hang-up reaches 1003.
    b_phone.finish(&mut lab.sw);
    let c = c_phone.finish(&mut lab.sw);
    assert_eq!(
        c.received("BYE ").len(),
        1,
        "1003 hung up by the switch after 1002 left"
    );
}

#[test]
fn switch_blind_transfer_by_api() {
    let mut lab = Lab::start(CallConfig::default());
    // 1002 answers and waits: the switch hangs it up when the transfer completes.
    let b_phone = lab.phone("1002", "phone_answer", |s| s);
    // 1003, the target, answers and waits too.
    let c_rtp = RtpEndpoint::bind();
    let target = lab.phone("1003", "phone_answer", |s| s.rtp_port(c_rtp.port));
    let mut a_rtp = RtpEndpoint::bind();
    let caller = lab
        .caller("1001", "1002", "call")
        .rtp_port(a_rtp.port)
        .spawn();
    let call = lab.call_started(&[("from", "1001"), ("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    let ok = caller.wait_received("a 200 with SDP", EVENT, |m| {
        m.starts_with("SIP/2.0 200") && body(m).contains("m=audio")
    });
    let a_switch = sdp_audio(&ok).expect("SDP in the 200");

    // Leg b's far party (1001) goes to 1003.
    http::post_ok(
        lab.http(),
        &format!("/v1/calls/{call}/transfer"),
        r#"{"leg":"b","to":"1003"}"#,
    );
    let tr = lab.wait("call-transferred", &[("call", &call), ("by", "b")]);
    assert_eq!(tr.get("to"), "1003", "{}", tr.line);
    assert_eq!(tr.get("kind"), "blind", "{}", tr.line);
    // 1001 keeps its relay endpoint: what it sends there now reaches 1003.
    a_rtp.send_tone(a_switch, 440.0, 5);
    let got = c_rtp.recv_until(Duration::from_secs(2), |p| p.len() >= 3);
    assert!(got.len() >= 3, "1001 -> 1003: {} packets", got.len());
    let b = b_phone.finish(&mut lab.sw);
    assert_eq!(b.received("BYE ").len(), 1, "the switch hangs up 1002");

    let r = http::delete(lab.http(), &format!("/v1/calls/{call}"));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    let a = caller.finish(&mut lab.sw);
    let c = target.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "switch")]);
    assert!(
        a.received("INVITE ").is_empty(),
        "no re-INVITE to 1001:\n{}",
        a.messages
    );
    assert!(c.received("INVITE ")[0].starts_with("INVITE sip:1003@"));
    assert_eq!(c.received("BYE ").len(), 1);
}

#[test]
fn switch_transfer_to_a_busy_target_keeps_the_call() {
    let mut lab = Lab::start(CallConfig::default());
    let b_phone = lab.phone("1002", "phone_answer", |s| s);
    let busy = lab.phone("1004", "phone_busy", |s| s);
    let caller = lab.caller("1001", "1002", "call").spawn();
    let call = lab.call_started(&[("from", "1001"), ("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    http::post_ok(
        lab.http(),
        &format!("/v1/calls/{call}/transfer"),
        r#"{"leg":"a","to":"1004"}"#,
    );
    let failed = lab.wait("call-transfer-failed", &[("call", &call), ("by", "a")]);
    assert_eq!(failed.get("status"), "486", "{}", failed.line);
    busy.finish(&mut lab.sw);
    // The call is as it was: both parties up, and the API still shows it.
    let s = lab.summary(&call);
    assert_eq!(s["legs"].as_array().map(Vec::len), Some(2), "{s}");
    // Refusals answer at once, naming the field.
    let r = http::post(
        lab.http(),
        &format!("/v1/calls/{call}/transfer"),
        r#"{"leg":"a","to":"99"}"#,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = http::post(
        lab.http(),
        "/v1/calls/no-such-call/transfer",
        r#"{"leg":"a","to":"1003"}"#,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http::delete(lab.http(), &format!("/v1/calls/{call}"));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    caller.finish(&mut lab.sw);
    let b = b_phone.finish(&mut lab.sw);
    assert_eq!(b.received("BYE ").len(), 1);
    lab.wait("call-ended", &[("call", &call), ("by", "switch")]);
}
