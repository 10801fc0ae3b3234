//! A BYE from the far end crossing the switch's own BYE (both sides hang up
//! at once; baresip after the final NOTIFY of its REFER) is recognised until
//! the switch's BYE is answered, so the endpoint answers it 200, not 481.

use super::*;

#[test]
fn bye_crossing_ours_is_recognised_until_ours_is_answered() {
    let mut w = world();
    w.receive(invite("1002", 6001), source(6001));
    w.reply(0, 200, "callee", true);
    let ok = w.out.answers.last().unwrap().1.clone();
    assert_eq!(ok.status_code.code(), 200);
    let call = w
        .events()
        .iter()
        .find_map(|e| {
            e.strip_prefix("call-started call=")
                .map(|r| r.split(' ').next().unwrap().to_string())
        })
        .unwrap();
    w.calls
        .handle_command(
            w.now,
            &mut w.out,
            CallCommand::Hangup {
                call: super::super::CallId(call),
            },
        )
        .unwrap();
    let bye_to_caller = w
        .out
        .sent
        .iter()
        .rposition(|(_, r, d)| r.method == Method::Bye && d.remote.port() == 6001)
        .expect("BYE to the caller");
    // The caller's own BYE, sent before ours reached it.
    let to_tag = ok.to_tag().unwrap();
    let theirs = parse_req(format!(
        "BYE sip:switchback@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-x\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:1002@127.0.0.1>;tag={to_tag}\r\nCall-ID: a-1002-6001\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!w.calls.owns_request(&theirs), "the leg is gone");
    assert!(w.calls.is_crossing_bye(&theirs));
    // Not for another method or another dialog.
    let mut info = theirs.clone();
    info.method = Method::Info;
    assert!(!w.calls.is_crossing_bye(&info));
    // Once our BYE is answered the dialog is over for good: 481 again.
    w.reply(bye_to_caller, 200, "caller", false);
    assert!(!w.calls.is_crossing_bye(&theirs));
}
