//! Call transfer through the switch: blind (REFER to a user) with SIPp, and
//! attended (REFER with Replaces naming a second dialog) with the raw UA in
//! `common::ua`, since one SIPp process holds one dialog.

mod common;

use std::time::Duration;

use common::calls::{CallConfig, Lab};
use common::sippbg::{body, header};
use common::ua::{replaces_param, Ua};

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
