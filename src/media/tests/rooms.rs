//! Conference rooms through the real relay thread on loopback: phones are
//! sockets that send a tone every 20 ms on their own clock (as a phone
//! does) and collect what the relay sends them; what each heard is
//! analysed by frequency (Goertzel). Every wait is bounded: a phone stops
//! once it has sent its script and received as many mixed frames, or fails
//! with what it got.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::codec::G711;

const PTIME: Duration = Duration::from_millis(20);
const AMP: f64 = 8000.0;
const F1: f64 = 400.0;
const F2: f64 = 1000.0;
const F3: f64 = 1600.0;

/// RTP packets of a tone at absolute sample positions `ts0..`, so a later
/// script continuing the timestamps continues the sine.
#[allow(clippy::too_many_arguments)]
fn tone(
    freq: f64,
    amp: f64,
    law: G711,
    pt: u8,
    ssrc: u32,
    seq0: u16,
    ts0: u32,
    n: usize,
) -> Vec<Vec<u8>> {
    (0..n)
        .map(|k| {
            let ts = ts0.wrapping_add(160 * k as u32);
            let payload: Vec<u8> = (0..160u32)
                .map(|i| {
                    let t = f64::from(ts.wrapping_add(i)) / 8000.0;
                    law.encode((amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16)
                })
                .collect();
            rtp_packet(pt, seq0.wrapping_add(k as u16), ts, ssrc, k == 0, &payload)
        })
        .collect()
}

/// One phone's part in a conversation: what it sends (one packet per
/// 20 ms), and how many mixed audio frames it waits for.
struct Part<'a> {
    phone: &'a Phone,
    to: SocketAddr,
    script: Vec<Vec<u8>>,
    frames: usize,
}

/// Run every part at once (a thread each); what each received, in order.
fn converse(parts: Vec<Part<'_>>) -> Vec<Vec<Pkt>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|p| scope.spawn(move || run_part(p)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn run_part(p: Part<'_>) -> Vec<Pkt> {
    let start = Instant::now();
    let deadline = start + PTIME * p.script.len() as u32 + WAIT;
    let mut got: Vec<Pkt> = Vec::new();
    let mut audio = 0;
    let mut sent = 0;
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        assert!(
            now < deadline,
            "{} of {} mixed frames received at {} ({} sent)",
            audio,
            p.frames,
            p.phone.addr(),
            sent
        );
        let next_send = start + PTIME * sent as u32;
        if sent < p.script.len() && now >= next_send {
            p.phone.send(p.to, &p.script[sent]);
            sent += 1;
            continue;
        }
        if sent == p.script.len() && audio >= p.frames {
            return got;
        }
        let wait = if sent < p.script.len() {
            next_send - now
        } else {
            WAIT
        };
        p.phone
            .rtp
            .set_read_timeout(Some(wait.max(Duration::from_micros(100))))
            .unwrap();
        match p.phone.rtp.recv_from(&mut buf) {
            Ok((n, _)) => {
                let pkt = Pkt(buf[..n].to_vec());
                if matches!(pkt.pt(), 0 | 8) {
                    audio += 1;
                }
                got.push(pkt);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("receive: {e}"),
        }
    }
}

/// The audio of mixed frames `from..to` (in arrival order), decoded by
/// payload type.
fn audio_of(pkts: &[Pkt], from: usize, to: usize) -> Vec<i16> {
    pkts.iter()
        .filter(|p| matches!(p.pt(), 0 | 8))
        .skip(from)
        .take(to - from)
        .flat_map(|p| {
            let law = if p.pt() == 0 { G711::Pcmu } else { G711::Pcma };
            p.payload()
                .iter()
                .map(move |&c| law.decode(c))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Amplitude of the sine at `freq` (Goertzel over whole periods).
fn level(x: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0).sqrt() / x.len().max(1) as f64
}

/// Asserts which of the tones `x` holds: present above half their
/// amplitude, absent below -40 dB.
fn assert_hears(who: &str, x: &[i16], present: &[f64], absent: &[f64]) {
    assert!(x.len() >= 160 * 30, "{who}: only {} samples", x.len());
    for &f in present {
        let l = level(x, f);
        assert!(
            l > AMP / 2.0,
            "{who} should hear {f} Hz: level {l:.0} of {AMP}"
        );
    }
    for &f in absent {
        let l = level(x, f);
        assert!(
            l < AMP / 100.0,
            "{who} should not hear {f} Hz: level {l:.1} of {AMP}"
        );
    }
}

/// Three open legs (1: PCMU, 2: PCMA, 3: PCMU) with their phones.
fn three_legs(h: &mut Harness) -> Vec<(Phone, SocketAddr)> {
    [(1, PCMU), (2, PCMA), (3, PCMU)]
        .into_iter()
        .map(|(id, map)| {
            let phone = Phone::new();
            let local = h.open(LegId(id), Some(phone.addr()), Some(map));
            (phone, local)
        })
        .collect()
}

fn mix(h: &mut Harness, members: &[(u64, Role)], dtmf: DtmfRoute) {
    h.engine.command(MediaCommand::Mix {
        room: "conf-1".into(),
        members: members.iter().map(|&(l, r)| (LegId(l), r)).collect(),
        dtmf,
    });
    h.fence();
}

/// Tones F1, F2, F3 from legs 1..3 for `n` packets, starting at packet
/// `k0` of each stream; every phone waits for `n` mixed frames.
fn talk(legs: &[(Phone, SocketAddr)], k0: usize, n: usize) -> Vec<Vec<Pkt>> {
    let laws = [(G711::Pcmu, 0), (G711::Pcma, 8), (G711::Pcmu, 0)];
    let parts = legs
        .iter()
        .zip([F1, F2, F3])
        .zip(laws)
        .enumerate()
        .map(|(i, (((phone, to), f), (law, pt)))| Part {
            phone,
            to: *to,
            script: tone(
                f,
                AMP,
                law,
                pt,
                0x100 + i as u32,
                k0 as u16,
                160 * k0 as u32,
                n,
            ),
            frames: n,
        })
        .collect();
    converse(parts)
}

#[test]
fn three_legs_each_hear_the_other_two_and_not_themselves() {
    let mut h = Harness::new(None);
    let legs = three_legs(&mut h);
    let party = Role::Party;
    mix(
        &mut h,
        &[(1, party), (2, party), (3, party)],
        DtmfRoute::Others,
    );
    let heard = talk(&legs, 0, 75);
    let tones = [F1, F2, F3];
    for (i, pkts) in heard.iter().enumerate() {
        let others: Vec<f64> = tones.iter().copied().filter(|&f| f != tones[i]).collect();
        assert_hears(
            &format!("leg {}", i + 1),
            &audio_of(pkts, 20, 65),
            &others,
            &[tones[i]],
        );
        // One stream per listener, in its own law, numbered continuously.
        let audio: Vec<&Pkt> = pkts.iter().filter(|p| matches!(p.pt(), 0 | 8)).collect();
        let pt = if i == 1 { 8 } else { 0 };
        assert!(audio
            .iter()
            .all(|p| p.pt() == pt && p.ssrc() == audio[0].ssrc()));
        assert!(audio[0].marker());
        for w in audio.windows(2) {
            let ds = w[1].seq().wrapping_sub(w[0].seq());
            assert!((1..100).contains(&ds), "sequence runs forward");
            assert_eq!(w[1].ts().wrapping_sub(w[0].ts()), 160 * u32::from(ds));
        }
    }
    let st = h.engine.mixer_stats();
    assert_eq!((st.rooms, st.members), (1, 3));
    assert!(st.frames >= 3 * 75);
    // The relay counted what it sent.
    wait_until(|| h.stats(LegId(1)).packets_out >= 75);
}

#[test]
fn whisper_reaches_the_agent_only_and_listen_no_one() {
    let mut h = Harness::new(None);
    let legs = three_legs(&mut h);
    // 1: agent, 2: contact, 3: supervisor coaching the agent.
    let (agent, contact, sup) = (1, 2, 3);
    mix(
        &mut h,
        &[
            (agent, Role::Party),
            (contact, Role::Party),
            (sup, Role::Whisper { to: LegId(agent) }),
        ],
        DtmfRoute::Others,
    );
    let heard = talk(&legs, 0, 60);
    assert_hears("agent", &audio_of(&heard[0], 15, 55), &[F2, F3], &[F1]);
    assert_hears("contact", &audio_of(&heard[1], 15, 55), &[F1], &[F3, F2]);
    assert_hears("supervisor", &audio_of(&heard[2], 15, 55), &[F1, F2], &[F3]);
    // Switched to listening: nobody hears the supervisor any more.
    h.engine.command(MediaCommand::SetRole {
        leg: LegId(sup),
        role: Role::Listen,
    });
    h.fence();
    let heard = talk(&legs, 60, 60);
    assert_hears("agent", &audio_of(&heard[0], 15, 55), &[F2], &[F1, F3]);
    assert_hears("contact", &audio_of(&heard[1], 15, 55), &[F1], &[F2, F3]);
    assert_hears("supervisor", &audio_of(&heard[2], 15, 55), &[F1, F2], &[F3]);
}

#[test]
fn gain_changes_the_measured_level_by_the_requested_db() {
    let mut h = Harness::new(None);
    let legs = three_legs(&mut h);
    mix(
        &mut h,
        &[(1, Role::Party), (2, Role::Party), (3, Role::Party)],
        DtmfRoute::Others,
    );
    // Leg 1 talks at a quarter of full scale (room for +12 dB); 2 and 3
    // listen.
    let amp = 4000.0;
    let mut k = 0;
    let mut measure = |h: &mut Harness, gain: Option<(u64, Direction, f32)>| {
        if let Some((leg, direction, db)) = gain {
            h.engine.command(MediaCommand::SetGain {
                leg: LegId(leg),
                direction,
                db,
            });
            h.fence();
        }
        let parts = vec![
            Part {
                phone: &legs[0].0,
                to: legs[0].1,
                script: tone(F2, amp, G711::Pcmu, 0, 7, k as u16, 160 * k as u32, 50),
                frames: 50,
            },
            Part {
                phone: &legs[1].0,
                to: legs[1].1,
                script: Vec::new(),
                frames: 50,
            },
            Part {
                phone: &legs[2].0,
                to: legs[2].1,
                script: Vec::new(),
                frames: 50,
            },
        ];
        k += 50;
        let heard = converse(parts);
        (
            level(&audio_of(&heard[1], 15, 45), F2),
            level(&audio_of(&heard[2], 15, 45), F2),
        )
    };
    let db = |x: f64, y: f64| 20.0 * (x / y).log10();
    let (b0, c0) = measure(&mut h, None);
    assert!(
        (b0 - amp).abs() < amp * 0.1 && (c0 - amp).abs() < amp * 0.1,
        "{b0} {c0}"
    );
    // What leg 1 says, +6 dB: both listeners hear it louder.
    let (b, c) = measure(&mut h, Some((1, Direction::In, 6.0)));
    assert!((db(b, b0) - 6.0).abs() < 1.0, "in +6: {:.2} dB", db(b, b0));
    assert!((db(c, c0) - 6.0).abs() < 1.0, "in +6: {:.2} dB", db(c, c0));
    // What leg 2 hears, -9 dB: leg 3 is not affected.
    let (b, c) = measure(&mut h, Some((2, Direction::Out, -9.0)));
    assert!(
        (db(b, b0) - -3.0).abs() < 1.0,
        "in +6, out -9: {:.2} dB",
        db(b, b0)
    );
    assert!(
        (db(c, c0) - 6.0).abs() < 1.0,
        "leg 3 unchanged: {:.2} dB",
        db(c, c0)
    );
}

#[test]
fn events_reach_the_members_the_room_routes_them_to_and_are_reported() {
    let mut h = Harness::new(None);
    let legs = three_legs(&mut h);
    let party = Role::Party;
    mix(
        &mut h,
        &[(1, party), (2, party), (3, party)],
        DtmfRoute::Others,
    );
    // Leg 1 keys a 5: start, two updates, three ends, all with one timestamp.
    let key = |ssrc: u32, seq0: u16, ts: u32| -> Vec<Vec<u8>> {
        [
            (false, 160),
            (false, 320),
            (false, 480),
            (true, 640),
            (true, 640),
            (true, 640),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(end, dur))| event(101, seq0 + i as u16, ts, ssrc, 5, end, dur))
        .collect()
    };
    let run = |script: Vec<Vec<u8>>| {
        converse(vec![
            Part {
                phone: &legs[0].0,
                to: legs[0].1,
                script,
                frames: 20,
            },
            Part {
                phone: &legs[1].0,
                to: legs[1].1,
                script: Vec::new(),
                frames: 20,
            },
            Part {
                phone: &legs[2].0,
                to: legs[2].1,
                script: Vec::new(),
                frames: 20,
            },
        ])
    };
    let heard = run(key(9, 1, 1000));
    assert_eq!(
        h.event(),
        MediaEvent::Dtmf {
            leg: LegId(1),
            digit: '5',
            duration_ms: 80
        }
    );
    let events = |pkts: &[Pkt], pt: u8| -> Vec<(bool, u16, u32, bool)> {
        pkts.iter()
            .filter(|p| p.pt() == pt)
            .map(|p| {
                let d = p.payload();
                (
                    d[1] & 0x80 != 0,
                    u16::from_be_bytes([d[2], d[3]]),
                    p.ts(),
                    p.marker(),
                )
            })
            .collect()
    };
    // Leg 2 (PCMA/96) and leg 3 (PCMU/101) get the event in their own
    // types and streams: one timestamp, marker on the first, every end.
    // (A retransmitted end may be dropped when the sender's pacing slips
    // past the hangover on a loaded machine; the first one never is.)
    for (pkts, pt) in [(&heard[1], 96), (&heard[2], 101)] {
        let ev = events(pkts, pt);
        assert!((4..=6).contains(&ev.len()), "{ev:?}");
        assert!(ev.iter().all(|e| e.2 == ev[0].2), "one timestamp: {ev:?}");
        assert!(
            ev[0].3 && ev.iter().skip(1).all(|e| !e.3),
            "marker first: {ev:?}"
        );
        assert_eq!(
            ev.iter().map(|e| e.1).take(3).collect::<Vec<_>>(),
            [160, 320, 480]
        );
        assert!(ev[3].0, "the first end is forwarded: {ev:?}");
        assert_eq!(pkts[0].ssrc(), pkts.last().unwrap().ssrc(), "one stream");
    }
    assert!(events(&heard[0], 101).is_empty(), "not back to the sender");
    // Routed to leg 2 only: leg 3 gets audio and no event.
    mix(
        &mut h,
        &[(1, party), (2, party), (3, party)],
        DtmfRoute::Only(LegId(2)),
    );
    let heard = run(key(9, 7, 5000));
    assert!(matches!(
        h.event(),
        MediaEvent::Dtmf {
            leg: LegId(1),
            digit: '5',
            ..
        }
    ));
    assert!(events(&heard[1], 96).len() >= 4);
    assert!(events(&heard[2], 101).is_empty());
}

#[test]
fn held_legs_get_nothing_muted_legs_still_hear() {
    let mut h = Harness::new(None);
    let legs = three_legs(&mut h);
    let party = Role::Party;
    // Held and muted before the room: the held leg never gets a frame.
    h.engine.command(MediaCommand::SetHold {
        leg: LegId(2),
        held: true,
    });
    h.engine.command(MediaCommand::SetMute {
        leg: LegId(3),
        muted: true,
    });
    mix(
        &mut h,
        &[(1, party), (2, party), (3, party)],
        DtmfRoute::Others,
    );
    let sent2 = h.stats(LegId(2)).packets_out;
    let parts = legs
        .iter()
        .zip([F1, F2, F3])
        .enumerate()
        .map(|(i, ((phone, to), f))| {
            let (law, pt) = if i == 1 {
                (G711::Pcma, 8)
            } else {
                (G711::Pcmu, 0)
            };
            Part {
                phone,
                to: *to,
                script: tone(f, AMP, law, pt, 50 + i as u32, 0, 0, 50),
                // The held leg waits for nothing.
                frames: if i == 1 { 0 } else { 50 },
            }
        })
        .collect();
    let heard = converse(parts);
    assert_hears("leg 1", &audio_of(&heard[0], 15, 45), &[], &[F1, F2, F3]);
    assert_hears(
        "muted leg 3",
        &audio_of(&heard[2], 15, 45),
        &[F1],
        &[F2, F3],
    );
    assert!(
        heard[1].is_empty(),
        "the held leg got {} packets",
        heard[1].len()
    );
    assert_eq!(h.stats(LegId(2)).packets_out, sent2);
}

#[test]
fn leaving_the_room_returns_to_the_zero_decode_bridge() {
    let mut h = Harness::new(None);
    let legs = three_legs(&mut h);
    let party = Role::Party;
    mix(
        &mut h,
        &[(1, party), (2, party), (3, party)],
        DtmfRoute::Others,
    );
    let heard = talk(&legs, 0, 10);
    let last_mixed = heard[0].iter().rev().find(|p| p.pt() == 0).unwrap().seq();
    // Back to two: legs 1 and 3 (both PCMU) bridged; 2 left alone.
    h.engine.command(MediaCommand::Leave { leg: LegId(2) });
    h.engine.command(MediaCommand::Bridge {
        a: LegId(1),
        b: LegId(3),
    });
    h.fence();
    assert_eq!(h.engine.mixer_stats().rooms, 0);
    let (p1, l1) = (&legs[0].0, legs[0].1);
    let (p3, l3) = (&legs[2].0, legs[2].1);
    // Drain what the room sent before it went.
    let drain = |p: &Phone| {
        p.rtp
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut buf = [0u8; 2048];
        while p.rtp.recv_from(&mut buf).is_ok() {}
        p.rtp.set_read_timeout(Some(WAIT)).unwrap();
    };
    drain(p1);
    drain(p3);
    // A packet is forwarded as it came: the same bytes, not re-encoded.
    let odd: Vec<u8> = (0..160u32).map(|i| (i * 37 % 256) as u8).collect();
    p3.send(l3, &rtp_packet(0, 500, 80_000, 0x300, false, &odd));
    let got = p1.recv();
    assert_eq!(got.payload(), &odd[..]);
    assert!(got.marker(), "a new source for leg 1's stream");
    let ahead = got.seq().wrapping_sub(last_mixed);
    assert!(
        (1..20).contains(&ahead),
        "leg 1's stream continues: {ahead}"
    );
    p1.send(l1, &rtp_packet(0, 9, 1600, 0x100, false, &odd));
    assert_eq!(p3.recv().payload(), &odd[..]);
}

#[test]
fn a_recording_follows_its_first_leg_into_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conf.wav");
    let mut h = Harness::new(None);
    let legs = three_legs(&mut h);
    // A two-party call 1 <-> 2, recorded with leg 1 (the agent) first.
    h.engine.command(MediaCommand::Bridge {
        a: LegId(1),
        b: LegId(2),
    });
    h.engine.command(MediaCommand::StartRecording {
        call: "call-1".into(),
        legs: [LegId(1), LegId(2)],
        path: path.clone(),
    });
    assert!(matches!(h.event(), MediaEvent::RecordingStarted { .. }));
    let bridged = converse(
        legs.iter()
            .take(2)
            .zip([(F1, G711::Pcmu, 0), (F2, G711::Pcma, 8)])
            .enumerate()
            .map(|(i, ((phone, to), (f, law, pt)))| Part {
                phone,
                to: *to,
                script: tone(f, AMP, law, pt, 0x100 + i as u32, 0, 0, 50),
                frames: 50,
            })
            .collect(),
    );
    assert!(bridged.iter().all(|p| p.len() >= 50));
    // Leg 3 joins: a conference of three; the recording follows.
    let party = Role::Party;
    mix(
        &mut h,
        &[(1, party), (2, party), (3, party)],
        DtmfRoute::Others,
    );
    talk(&legs, 50, 75);
    h.engine.command(MediaCommand::StopRecording {
        call: "call-1".into(),
    });
    let MediaEvent::RecordingStopped { path: done, .. } = h.event() else {
        panic!("recording stopped");
    };
    let mut wav = hound::WavReader::open(&done).unwrap();
    let all: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = all.iter().step_by(2).copied().collect();
    let right: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
    // Whole frames of the file: the bridged part first (about 1 s), then
    // the conference (about 1.5 s); each judged away from its edges.
    let frames = left.len() / 160;
    assert!(frames >= 110, "{frames} frames recorded");
    let window = |x: &[i16], from: usize, to: usize| x[from * 160..to * 160].to_vec();
    let (b0, b1) = (10, 40);
    let (c0, c1) = (frames - 55, frames - 15);
    assert_hears("left, bridged", &window(&left, b0, b1), &[F1], &[F2, F3]);
    assert_hears("right, bridged", &window(&right, b0, b1), &[F2], &[F1, F3]);
    assert_hears("left, conference", &window(&left, c0, c1), &[F1], &[F2, F3]);
    assert_hears(
        "right, conference",
        &window(&right, c0, c1),
        &[F2, F3],
        &[F1],
    );
}
