//! Checks of the call-test harness itself, with no switch: SIPp scenarios against
//! each other and against the harness's own RTP endpoints, raw UA and readers, so
//! that a call test failing against the switch points at the switch.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::calls::CallConfig;
use common::rtp::{check_dtmf_shape, dtmf_digits, pcmu_samples, RtpEndpoint};
use common::sippbg::{header, sdp_audio, Sipp};
use common::ua::Ua;
use common::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn call_config_passes_check_config() {
    let cfg = CallConfig {
        peer_auth: Some(("u".into(), "p".into())),
        add_headers: vec![("X-Switchback".into(), "1".into())],
        caller_id_number: Some("+15550100".into()),
        ..CallConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchback.toml");
    std::fs::write(&path, cfg.to_toml()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchback"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        cfg.to_toml()
    );
}

#[test]
fn sipp_pair_media_reaches_a_test_endpoint() {
    // The callee plays the 1000 Hz pcap toward the caller's SDP, which names our socket.
    let ep = RtpEndpoint::bind();
    let callee = Sipp::new("phone_answer", addr(9))
        .service("1002")
        .set("play", 1)
        .audio("fixtures/audio/tone_1000_pcmu.pcap")
        .spawn();
    callee.wait_bound();
    let caller = Sipp::new("call", addr(callee.port))
        .service("1002")
        .key("from_user", "1001")
        .rtp_port(ep.port)
        .set("hangup_ms", 3300)
        .spawn();
    let got = ep.recv_until(Duration::from_secs(5), |p| p.len() >= 150);
    let run = caller.wait(Duration::from_secs(20));
    assert!(run.success(), "{}", run.describe());
    assert!(callee.wait(Duration::from_secs(10)).success());
    assert!(got.len() >= 140, "{} packets of 150", got.len());
    assert!(got.iter().all(|p| p.pt == 0 && p.payload.len() == 160));
    let f = wav::dominant_frequency(&pcmu_samples(&got), 8000);
    assert!((f - 1000.0).abs() <= 5.0, "tone pcap measures {f} Hz");
    // The trace readers see the SDP that named our port.
    let inv = &run.sent("INVITE ")[0];
    assert_eq!(sdp_audio(inv).unwrap().port(), ep.port);
    assert_eq!(run.final_status(), Some(200));
}

#[test]
fn sipp_dtmf_pcap_is_a_well_formed_digit() {
    let ep = RtpEndpoint::bind();
    // The caller's audio goes to the callee's SDP: point the callee's SDP at us.
    let callee = Sipp::new("phone_answer", addr(9))
        .service("1002")
        .rtp_port(ep.port)
        .spawn();
    callee.wait_bound();
    let caller = Sipp::new("call", addr(callee.port))
        .service("1002")
        .key("from_user", "1001")
        .set("dtmf", 1)
        .set("hangup_ms", 800)
        .spawn();
    let got = ep.recv_until(Duration::from_secs(3), |p| {
        p.iter().filter(|p| p.dtmf().is_some_and(|d| d.end)).count() >= 3
    });
    assert!(caller.wait(Duration::from_secs(20)).success());
    assert!(callee.wait(Duration::from_secs(10)).success());
    let d = dtmf_digits(&got, 101);
    assert_eq!(d.len(), 1, "{got:?}");
    assert_eq!(d[0].0, '5');
    check_dtmf_shape(&d[0].1).unwrap();
}

#[test]
fn rtp_endpoint_generates_rfc4733() {
    let mut a = RtpEndpoint::bind();
    let b = RtpEndpoint::bind();
    a.send_dtmf(b.addr(), '#', 100, 101);
    a.send_dtmf(b.addr(), '7', 100, 101);
    let got = b.recv_until(Duration::from_secs(2), |p| p.len() >= 16);
    let d = dtmf_digits(&got, 101);
    assert_eq!(d.iter().map(|x| x.0).collect::<String>(), "#7");
    for (_, ps) in &d {
        check_dtmf_shape(ps).unwrap();
    }
    a.send_tone(b.addr(), 440.0, 25);
    let got = b.recv_until(Duration::from_secs(2), |p| p.len() >= 25);
    let f = wav::dominant_frequency(&pcmu_samples(&got), 8000);
    assert!((f - 440.0).abs() <= 5.0, "{f}");
}

#[test]
fn raw_ua_calls_a_sipp_phone() {
    let phone = Sipp::new("phone_answer", addr(9)).service("1002").spawn();
    phone.wait_bound();
    let mut ua = Ua::bind(free_port(), "1001", addr(phone.port));
    let mut d = ua.invite("1002", 4000);
    assert!(!d.remote_tag.is_empty());
    let r = ua.request(&mut d, "BYE", "", None);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let run = phone.wait(Duration::from_secs(10));
    assert!(run.success(), "{}", run.describe());
    let bye = &run.received("BYE ")[0];
    assert_eq!(header(bye, "Call-ID"), Some(d.call_id.as_str()));
}

#[test]
fn sipp_refer_scenario_against_stand_in() {
    let sw = Sipp::new("selftest/switch_refer", addr(9)).spawn();
    sw.wait_bound();
    let run = Sipp::new("call_refer", addr(sw.port))
        .service("1002")
        .key("from_user", "1001")
        .key("refer_to", "1003")
        .run();
    assert!(run.success(), "{}", run.describe());
    assert!(sw.wait(Duration::from_secs(10)).success());
    assert_eq!(run.received("NOTIFY ").len(), 2);
    assert_eq!(run.received("BYE ").len(), 1);
}

#[test]
fn wav_reader_measures_each_channel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for n in 0..16000 {
        let t = n as f64 / 8000.0;
        w.write_sample((12000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
            .unwrap();
        w.write_sample((12000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    let r = wav::read(&path);
    let f: Vec<f64> = r
        .data
        .iter()
        .map(|c| wav::dominant_frequency(c, 8000))
        .collect();
    assert!(
        (f[0] - 440.0).abs() <= 2.0 && (f[1] - 1000.0).abs() <= 2.0,
        "{f:?}"
    );
}

#[test]
fn http_client_reads_a_json_answer() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        let body = r#"{"call":"c0123456789ab"}"#;
        write!(s, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        req
    });
    let r = http::post(a, "/v1/calls", r#"{"a":"1001","b":"1002"}"#);
    let req = t.join().unwrap();
    assert!(req.starts_with("POST /v1/calls HTTP/1.1\r\n"), "{req}");
    assert!(req.ends_with(r#"{"a":"1001","b":"1002"}"#), "{req}");
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["call"], "c0123456789ab");
}
