//! The mixer in virtual time: packets pushed and ticks run at chosen
//! instants, no socket and no sleep. Audio is checked by what each listener
//! decodes: exact bytes where the arithmetic must be exact, tone levels
//! (Goertzel) where it is about who hears whom.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;
use crate::codec::G711;

const A: LegId = LegId(1);
const B: LegId = LegId(2);
const C: LegId = LegId(3);
const S: LegId = LegId(4);
const ROOM: &str = "room-1";

fn state(law: G711) -> LegState {
    LegState {
        law,
        ..LegState::default()
    }
}

/// A sine source encoded with one law, 160 samples per packet.
#[derive(Clone)]
struct Tone {
    freq: f64,
    amp: f64,
    law: G711,
    n: u64,
}

impl Tone {
    fn new(freq: f64, amp: f64, law: G711) -> Self {
        Tone {
            freq,
            amp,
            law,
            n: 0,
        }
    }

    fn next(&mut self) -> Vec<u8> {
        (0..FRAME_SAMPLES)
            .map(|_| {
                let t = self.n as f64 / 8000.0;
                self.n += 1;
                let s = self.amp * (2.0 * std::f64::consts::PI * self.freq * t).sin();
                self.law.encode(s as i16)
            })
            .collect()
    }
}

/// Amplitude of the sine at `freq` in `x` (Goertzel; `x` spans whole
/// periods of the test tones, so the bin is exact).
fn level(x: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / x.len() as f64
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

/// One sending member: its tone (None: silent) and RTP numbering.
struct Sender {
    leg: LegId,
    tone: Option<Tone>,
    ssrc: u32,
    ts: u32,
}

impl Sender {
    fn new(leg: LegId, tone: Option<Tone>) -> Self {
        Sender {
            leg,
            tone,
            ssrc: 0x1000 + leg.0 as u32,
            ts: 7 * leg.0 as u32,
        }
    }
}

/// A mixer, a virtual clock, and what every listener received.
struct Sim {
    mixer: Mixer,
    now: Instant,
    /// Decoded audio per listener, one frame after another.
    heard: HashMap<LegId, Vec<i16>>,
    /// Raw frames per listener.
    frames: HashMap<LegId, Vec<Frame>>,
    ticks: usize,
}

impl Sim {
    fn new(members: &[(LegId, Role, LegState)]) -> Self {
        let now = Instant::now();
        let mut mixer = Mixer::new();
        assert!(mixer
            .set_room(ROOM, members, DtmfRoute::Others, now)
            .is_empty());
        Sim {
            mixer,
            now,
            heard: HashMap::new(),
            frames: HashMap::new(),
            ticks: 0,
        }
    }

    /// Each sender with a tone sends its next packet, then the clock moves
    /// to the next due frame and the mixer ticks.
    fn step(&mut self, senders: &mut [Sender]) {
        for s in senders.iter_mut() {
            if let Some(t) = s.tone.as_mut() {
                let law = t.law;
                let p = t.next();
                self.mixer.push_audio(s.leg, s.ssrc, s.ts, law, &p);
            }
            s.ts = s.ts.wrapping_add(FRAME_SAMPLES as u32);
        }
        self.tick_at_due();
    }

    fn tick_at_due(&mut self) {
        let due = self.mixer.poll_timeout().expect("a room is due");
        assert!(due >= self.now, "time runs forward");
        self.now = due;
        self.collect();
    }

    fn collect(&mut self) {
        let frames: Vec<Frame> = self.mixer.tick(self.now).to_vec();
        self.ticks += 1;
        for f in frames {
            let heard = self.heard.entry(f.leg).or_default();
            heard.extend(f.payload.iter().map(|&c| f.law.decode(c)));
            self.frames.entry(f.leg).or_default().push(f);
        }
    }

    fn run(&mut self, n: usize, senders: &mut [Sender]) {
        for _ in 0..n {
            self.step(senders);
        }
    }

    /// What `leg` heard in its last `frames` frames.
    fn last(&self, leg: LegId, frames: usize) -> &[i16] {
        let h = self.heard.get(&leg).map(Vec::as_slice).unwrap_or(&[]);
        &h[h.len().saturating_sub(frames * FRAME_SAMPLES)..]
    }

    fn frames_of(&self, leg: LegId) -> usize {
        self.frames.get(&leg).map_or(0, Vec::len)
    }
}

const F_A: f64 = 400.0;
const F_B: f64 = 1000.0;
const F_C: f64 = 1600.0;

#[test]
fn three_parties_hear_the_other_two_and_never_themselves_across_laws() {
    let mut sim = Sim::new(&[
        (A, Role::Party, state(G711::Pcmu)),
        (B, Role::Party, state(G711::Pcma)),
        (C, Role::Party, state(G711::Pcmu)),
    ]);
    let mut senders = [
        Sender::new(A, Some(Tone::new(F_A, 8000.0, G711::Pcmu))),
        Sender::new(B, Some(Tone::new(F_B, 8000.0, G711::Pcma))),
        Sender::new(C, Some(Tone::new(F_C, 8000.0, G711::Pcmu))),
    ];
    sim.run(60, &mut senders);
    for (me, mine, others) in [
        (A, F_A, [F_B, F_C]),
        (B, F_B, [F_A, F_C]),
        (C, F_C, [F_A, F_B]),
    ] {
        assert_eq!(sim.frames_of(me), 60, "{me}: one frame per tick");
        let x = sim.last(me, 50);
        for f in others {
            let l = level(x, f);
            assert!((7600.0..8400.0).contains(&l), "{me} hears {f} Hz at {l:.0}");
        }
        let own = level(x, mine);
        assert!(
            own < 40.0,
            "{me} hears itself at {own:.1} (-{:.0} dB)",
            db(8000.0 / own)
        );
    }
    // Each listener's frames are in its own law.
    assert!(sim.frames[&B].iter().all(|f| f.law == G711::Pcma));
    assert!(sim.frames[&A].iter().all(|f| f.law == G711::Pcmu));
}

#[test]
fn subtraction_is_exact_and_a_silent_member_costs_nothing() {
    // A sends every μ-law code; B never sends. B must get A's bytes back
    // unchanged (decode, sum with nothing, encode is the identity), A must
    // get exact silence.
    let mut sim = Sim::new(&[
        (A, Role::Party, state(G711::Pcmu)),
        (B, Role::Party, state(G711::Pcmu)),
    ]);
    let codes: Vec<u8> = (0..=255u8)
        .filter(|&c| c != 0x7F)
        .cycle()
        .take(160 * 30)
        .collect();
    let mut ts = 0u32;
    for chunk in codes.chunks(FRAME_SAMPLES) {
        sim.mixer.push_audio(A, 9, ts, G711::Pcmu, chunk);
        ts += FRAME_SAMPLES as u32;
        sim.tick_at_due();
    }
    for _ in 0..2 {
        sim.tick_at_due();
    }
    let got: Vec<u8> = sim.frames[&B].iter().flat_map(|f| f.payload).collect();
    // The first packet plays two frames after the first tick (PREFILL).
    assert!(got[..2 * FRAME_SAMPLES].iter().all(|&c| c == 0xFF));
    assert_eq!(&got[2 * FRAME_SAMPLES..], &codes[..]);
    assert!(sim.frames[&A].iter().all(|f| f.payload == [0xFF; 160]));
    assert_eq!(sim.frames_of(A), 32);
}

#[test]
fn the_sum_clips_once_instead_of_wrapping() {
    let mut sim = Sim::new(&[
        (A, Role::Party, state(G711::Pcmu)),
        (B, Role::Party, state(G711::Pcmu)),
        (C, Role::Party, state(G711::Pcma)),
    ]);
    // A and B at positive full scale (μ 0x80 = 32124), then negative.
    for (i, code) in [0x80u8, 0x80, 0x80, 0x00, 0x00, 0x00]
        .into_iter()
        .enumerate()
    {
        let ts = i as u32 * 160;
        sim.mixer.push_audio(A, 1, ts, G711::Pcmu, &[code; 160]);
        sim.mixer.push_audio(B, 2, ts, G711::Pcmu, &[code; 160]);
        sim.tick_at_due();
    }
    sim.tick_at_due();
    sim.tick_at_due();
    let c: Vec<[u8; 160]> = sim.frames[&C].iter().map(|f| f.payload).collect();
    // 64248 clips to 32767 (A-law 0xAA), -64248 to -32768 (0x2A).
    assert_eq!(c[2..5], [[0xAA; 160]; 3]);
    assert_eq!(c[5..8], [[0x2A; 160]; 3]);
    // A hears B alone, unclipped and exact.
    let a: Vec<[u8; 160]> = sim.frames[&A].iter().map(|f| f.payload).collect();
    assert_eq!(a[2..5], [[0x80; 160]; 3]);
    assert_eq!(a[5..8], [[0x00; 160]; 3]);
}

#[test]
fn a_late_packet_is_dropped_and_counted_and_nobody_waits() {
    let mut sim = Sim::new(&[
        (A, Role::Party, state(G711::Pcmu)),
        (B, Role::Party, state(G711::Pcmu)),
    ]);
    let mut tone = Tone::new(F_A, 8000.0, G711::Pcmu);
    let mut held_back = None;
    for k in 0..20u32 {
        let p = tone.next();
        if k == 5 {
            held_back = Some(p);
        } else {
            sim.mixer.push_audio(A, 1, k * 160, G711::Pcmu, &p);
        }
        if k == 12 {
            // Packet 5 arrives long after its frame was mixed.
            let p = held_back.take().unwrap();
            sim.mixer.push_audio(A, 1, 5 * 160, G711::Pcmu, &p);
        }
        sim.tick_at_due();
    }
    let st = sim.mixer.stats();
    assert_eq!(st.late_packets, 1);
    assert_eq!(st.resyncs, 0);
    assert_eq!(st.concealed, 1, "the missing frame was concealed");
    assert_eq!(sim.frames_of(B), 20, "a frame every tick");
    assert_eq!(st.frames, 40);
}

#[test]
fn a_member_that_stops_fades_out_within_five_frames() {
    let mut sim = Sim::new(&[
        (A, Role::Party, state(G711::Pcmu)),
        (B, Role::Party, state(G711::Pcmu)),
    ]);
    // 400 Hz: 20 samples a period, so a repeated frame stays in phase and
    // each frame's level can be measured alone.
    let mut senders = [Sender::new(A, Some(Tone::new(F_A, 8000.0, G711::Pcmu)))];
    sim.run(10, &mut senders);
    senders[0].tone = None;
    for _ in 0..10 {
        sim.step(&mut senders);
    }
    let heard = &sim.heard[&B];
    let frame_level = |k: usize| level(&heard[k * 160..(k + 1) * 160], F_A);
    // Frames 2..=11 carry packets 0..=9; frame 12 repeats, 13..=15 fade.
    assert!(frame_level(11) > 7600.0);
    assert!(frame_level(12) > 7600.0, "first loss: a repeat");
    let fades: Vec<f64> = (13..=15).map(frame_level).collect();
    assert!(
        fades[0] < 7000.0 && fades[0] > fades[1] && fades[1] > fades[2],
        "{fades:?}"
    );
    for k in 16..20 {
        assert!(
            heard[k * 160..(k + 1) * 160].iter().all(|&s| s == 0),
            "frame {k}"
        );
    }
    assert_eq!(sim.mixer.stats().concealed, 4);
    assert_eq!(sim.frames_of(B), 20);
}

#[test]
fn reordered_packets_inside_the_buffer_change_nothing() {
    let run = |order: &[usize]| {
        let mut sim = Sim::new(&[
            (A, Role::Party, state(G711::Pcmu)),
            (B, Role::Party, state(G711::Pcmu)),
        ]);
        let mut tone = Tone::new(F_B, 6000.0, G711::Pcmu);
        let packets: Vec<Vec<u8>> = (0..order.len()).map(|_| tone.next()).collect();
        // The first packet anchors the stream; the rest arrive in `order`,
        // one per tick.
        sim.mixer.push_audio(A, 1, 0, G711::Pcmu, &packets[0]);
        sim.tick_at_due();
        for &k in order.iter().skip(1) {
            sim.mixer
                .push_audio(A, 1, k as u32 * 160, G711::Pcmu, &packets[k]);
            sim.tick_at_due();
        }
        for _ in 0..3 {
            sim.tick_at_due();
        }
        (sim.heard[&B].clone(), sim.mixer.stats())
    };
    let (in_order, s1) = run(&[0, 1, 2, 3, 4, 5, 6, 7]);
    let (swapped, s2) = run(&[0, 2, 1, 4, 3, 6, 5, 7]);
    assert_eq!(in_order, swapped);
    assert_eq!((s1.late_packets, s2.late_packets), (0, 0));
    // Only the frame after the last packet is concealed, in both.
    assert_eq!((s1.concealed, s2.concealed), (1, 1));
}

/// A (400 Hz), B (1000 Hz) and S (1600 Hz) in a room, S with `role`.
fn three_with(role: Role) -> Sim {
    let mut sim = Sim::new(&[
        (A, Role::Party, state(G711::Pcmu)),
        (B, Role::Party, state(G711::Pcmu)),
        (S, role, state(G711::Pcma)),
    ]);
    let mut senders = [
        Sender::new(A, Some(Tone::new(F_A, 8000.0, G711::Pcmu))),
        Sender::new(B, Some(Tone::new(F_B, 8000.0, G711::Pcmu))),
        Sender::new(S, Some(Tone::new(F_C, 8000.0, G711::Pcma))),
    ];
    sim.run(30, &mut senders);
    sim
}

fn hears(sim: &Sim, who: LegId, freq: f64) -> bool {
    let l = level(sim.last(who, 25), freq);
    assert!(
        !(100.0..7000.0).contains(&l),
        "{who} hears {freq} Hz at an ambiguous {l:.0}"
    );
    l >= 7000.0
}

#[test]
fn listen_hears_everyone_and_is_heard_by_no_one() {
    let sim = three_with(Role::Listen);
    assert!(hears(&sim, S, F_A) && hears(&sim, S, F_B));
    assert!(hears(&sim, A, F_B) && !hears(&sim, A, F_C));
    assert!(hears(&sim, B, F_A) && !hears(&sim, B, F_C));
}

#[test]
fn whisper_is_heard_by_its_target_only() {
    let sim = three_with(Role::Whisper { to: A });
    assert!(
        hears(&sim, A, F_B) && hears(&sim, A, F_C),
        "the agent hears the coach"
    );
    assert!(
        hears(&sim, B, F_A) && !hears(&sim, B, F_C),
        "the contact does not"
    );
    assert!(hears(&sim, S, F_A) && hears(&sim, S, F_B) && !hears(&sim, S, F_C));
}

#[test]
fn a_role_change_takes_effect_without_touching_the_buffers() {
    let mut sim = three_with(Role::Listen);
    assert!(sim.mixer.set_role(S, Role::Party));
    let mut senders = [
        Sender::new(A, Some(Tone::new(F_A, 8000.0, G711::Pcmu))),
        Sender::new(B, Some(Tone::new(F_B, 8000.0, G711::Pcmu))),
        Sender::new(S, Some(Tone::new(F_C, 8000.0, G711::Pcma))),
    ];
    for s in &mut senders {
        s.ts = 30 * 160 + 7 * s.leg.0 as u32;
    }
    sim.run(25, &mut senders);
    assert!(
        hears(&sim, B, F_C),
        "barge: the contact hears the supervisor"
    );
    assert_eq!(sim.mixer.stats().resyncs, 0);
    assert!(!sim.mixer.set_role(LegId(99), Role::Party));
}

#[test]
fn held_gets_nothing_and_gives_nothing_muted_still_hears() {
    let mut sim = Sim::new(&[
        (A, Role::Party, state(G711::Pcmu)),
        (
            B,
            Role::Party,
            LegState {
                held: true,
                ..state(G711::Pcmu)
            },
        ),
        (
            S,
            Role::Party,
            LegState {
                muted: true,
                ..state(G711::Pcmu)
            },
        ),
    ]);
    let mut senders = [
        Sender::new(A, Some(Tone::new(F_A, 8000.0, G711::Pcmu))),
        Sender::new(B, Some(Tone::new(F_B, 8000.0, G711::Pcmu))),
        Sender::new(S, Some(Tone::new(F_C, 8000.0, G711::Pcmu))),
    ];
    sim.run(30, &mut senders);
    assert_eq!(sim.frames_of(B), 0, "nothing is mixed for a held leg");
    assert!(!hears(&sim, A, F_B) && !hears(&sim, A, F_C));
    assert!(hears(&sim, S, F_A) && !hears(&sim, S, F_B));
    // Retrieved: B hears and is heard again.
    let st = LegState {
        held: false,
        ..state(G711::Pcmu)
    };
    assert!(sim.mixer.set_state(B, st));
    sim.run(25, &mut senders);
    assert!(hears(&sim, A, F_B) && hears(&sim, B, F_A));
}

#[test]
fn gains_change_the_level_by_the_requested_db() {
    let measure = |gain_a_in: f32, gain_b_out: f32| {
        let mut sim = Sim::new(&[
            (
                A,
                Role::Party,
                LegState {
                    gain_in: Gain::from_db(gain_a_in),
                    ..state(G711::Pcmu)
                },
            ),
            (
                B,
                Role::Party,
                LegState {
                    gain_out: Gain::from_db(gain_b_out),
                    ..state(G711::Pcmu)
                },
            ),
            (C, Role::Party, state(G711::Pcma)),
        ]);
        let mut senders = [Sender::new(A, Some(Tone::new(F_B, 4000.0, G711::Pcmu)))];
        sim.run(30, &mut senders);
        (level(sim.last(B, 25), F_B), level(sim.last(C, 25), F_B))
    };
    let (b0, c0) = measure(0.0, 0.0);
    for (a_in, b_out) in [
        (6.0, 0.0),
        (-12.0, 0.0),
        (12.0, 0.0),
        (0.0, -6.0),
        (3.0, 3.0),
    ] {
        let (b, c) = measure(a_in, b_out);
        let want_b = f64::from(a_in + b_out);
        assert!(
            (db(b / b0) - want_b).abs() < 0.5,
            "B: {:.2} dB, wanted {want_b}",
            db(b / b0)
        );
        // C hears A's inbound gain only.
        assert!(
            (db(c / c0) - f64::from(a_in)).abs() < 0.5,
            "C: {:.2} dB",
            db(c / c0)
        );
    }
    assert_eq!(Gain::from_db(40.0), Gain::from_db(12.0));
    assert_eq!(Gain::from_db(f32::NAN), Gain::UNITY);
    assert_eq!(Gain::from_db(0.0), Gain::UNITY);
}

fn event(code: u8, end: bool, duration: u16) -> [u8; 4] {
    let [hi, lo] = duration.to_be_bytes();
    [code, if end { 0x8A } else { 0x0A }, hi, lo]
}

#[test]
fn events_go_to_those_who_hear_the_sender_and_withhold_their_audio() {
    let mut sim = Sim::new(&[
        (A, Role::Party, state(G711::Pcmu)),
        (B, Role::Party, state(G711::Pcmu)),
        (C, Role::Party, state(G711::Pcmu)),
        (S, Role::Listen, state(G711::Pcmu)),
    ]);
    sim.tick_at_due();
    let t = sim.now;
    let begin = |leg| EventTarget { leg, begin: true };
    let more = |leg| EventTarget { leg, begin: false };
    assert_eq!(
        sim.mixer.push_event(A, 800, &event(5, false, 160), t),
        &[begin(B), begin(C), begin(S)]
    );
    assert_eq!(
        sim.mixer.push_event(A, 800, &event(5, false, 320), t),
        &[more(B), more(C), more(S)]
    );
    // While it plays, the targets get no mixed audio; A still does.
    sim.tick_at_due();
    let n = |sim: &Sim, leg| sim.frames_of(leg);
    assert_eq!((n(&sim, A), n(&sim, B), n(&sim, S)), (2, 1, 1));
    let t = sim.now;
    assert_eq!(
        sim.mixer.push_event(A, 800, &event(5, true, 480), t),
        &[more(B), more(C), more(S)]
    );
    // The hangover after the end (60 ms), then audio resumes.
    sim.tick_at_due();
    sim.tick_at_due();
    assert_eq!(n(&sim, B), 1);
    sim.tick_at_due();
    assert_eq!((n(&sim, A), n(&sim, B)), (5, 2));
    // A late retransmission of that end is dropped, not a new event.
    let t = sim.now;
    assert!(sim
        .mixer
        .push_event(A, 800, &event(5, true, 480), t)
        .is_empty());
    // A listener's keys go nowhere; short payloads are not events.
    assert!(sim
        .mixer
        .push_event(S, 900, &event(1, false, 160), t)
        .is_empty());
    assert!(sim.mixer.push_event(A, 960, &[5, 0x0A, 0], t).is_empty());
}

#[test]
fn events_follow_the_rooms_route_and_time_out_without_an_end() {
    let now = Instant::now();
    let mut m = Mixer::new();
    m.set_room(
        ROOM,
        &[
            (A, Role::Party, state(G711::Pcmu)),
            (B, Role::Party, state(G711::Pcmu)),
            (C, Role::Whisper { to: A }, state(G711::Pcmu)),
        ],
        DtmfRoute::Only(A),
        now,
    );
    // The contact's digits reach the agent only.
    assert_eq!(
        m.push_event(B, 100, &event(1, false, 160), now),
        &[EventTarget {
            leg: A,
            begin: true
        }]
    );
    // The coach's digits reach the agent (the only one who hears it).
    assert_eq!(
        m.push_event(C, 100, &event(2, false, 160), now),
        &[EventTarget {
            leg: A,
            begin: true
        }]
    );
    // The agent's own digits have nowhere to go under this route.
    assert!(m.push_event(A, 100, &event(3, false, 160), now).is_empty());
    // Every end lost: the event is over after EVENT_TIMEOUT, A hears again.
    let mut first_for_a = None;
    while first_for_a.is_none() {
        let at = m.poll_timeout().expect("the room ticks");
        assert!(at < now + Duration::from_secs(1), "A never heard again");
        if m.tick(at).iter().any(|f| f.leg == A) {
            first_for_a = Some(at);
        }
    }
    let first = first_for_a.unwrap();
    assert!(first >= now + EVENT_TIMEOUT && first < now + EVENT_TIMEOUT + FRAME);
}

#[test]
fn membership_moves_dissolves_and_reports_who_left() {
    let now = Instant::now();
    let mut m = Mixer::new();
    let party = |leg| (leg, Role::Party, LegState::default());
    assert_eq!(m.poll_timeout(), None);
    assert!(m
        .set_room(
            "r1",
            &[party(A), party(B), party(C)],
            DtmfRoute::Others,
            now
        )
        .is_empty());
    assert_eq!(m.poll_timeout(), Some(now + FRAME));
    // A second room takes the next phase of the period.
    assert!(m
        .set_room("r2", &[party(S)], DtmfRoute::Others, now)
        .is_empty());
    assert_eq!(m.poll_timeout(), Some(now + FRAME));
    // Replacing the membership: C leaves, S moves over (r2 empties and goes).
    assert_eq!(
        m.set_room(
            "r1",
            &[party(A), party(B), party(S)],
            DtmfRoute::Others,
            now
        ),
        vec![C]
    );
    assert_eq!(m.room_of(S), Some("r1"));
    assert!(!m.contains(C));
    assert_eq!(m.members("r2"), None);
    assert_eq!(m.stats().rooms, 1);
    assert_eq!(m.stats().members, 3);
    // Repeats are ignored, and so is anyone past MAX_MEMBERS.
    let many: Vec<_> = (0..100).map(|i| party(LegId(100 + i % 80))).collect();
    m.set_room("big", &many, DtmfRoute::Others, now);
    assert_eq!(m.members("big").unwrap().len(), MAX_MEMBERS);
    assert_eq!(
        m.set_room("big", &[], DtmfRoute::Others, now).len(),
        MAX_MEMBERS
    );
    // Leaving the last member dissolves the room.
    assert!(m.leave(A) && m.leave(B) && m.leave(S));
    assert!(!m.leave(S));
    assert_eq!((m.stats().rooms, m.poll_timeout()), (0, None));
    // Pushing to a leg in no room is ignored.
    m.push_audio(A, 1, 0, G711::Pcmu, &[0; 160]);
    assert!(m.tick(now + FRAME * 10).is_empty());
}

#[test]
fn rooms_created_together_are_spread_over_the_period() {
    let now = Instant::now();
    let mut m = Mixer::new();
    for i in 0..PHASES + 1 {
        m.set_room(
            &format!("r{i}"),
            &[(LegId(u64::from(i)), Role::Party, LegState::default())],
            DtmfRoute::Others,
            now,
        );
    }
    // One frame each per 2 ms step: phase i is due at 20 + 2i ms.
    let mut counts = Vec::new();
    for step in 0..PHASES {
        let at = now + FRAME + FRAME / PHASES * step;
        counts.push(m.tick(at).len());
    }
    // Phase 0 holds two rooms (the eleventh wrapped around).
    assert_eq!(counts[0], 2);
    assert!(counts[1..].iter().all(|&c| c == 1), "{counts:?}");
    // A room gone frees its phase: the next room takes it and ticks on that
    // phase's grid (here 2 ms after phase 0, as before).
    m.set_room("r3", &[], DtmfRoute::Others, now);
    let later = now + FRAME * 5;
    m.set_room(
        "new",
        &[(LegId(99), Role::Party, LegState::default())],
        DtmfRoute::Others,
        later,
    );
    let mut due_for_new = None;
    for step in 0..2 * PHASES {
        let at = now + FRAME * 2 + FRAME / PHASES * step;
        if m.tick(at).iter().any(|f| f.leg == LegId(99)) {
            due_for_new = Some(at);
            break;
        }
    }
    // Frames due before `later` were mixed above; the new room's first is
    // the first phase-3 instant at least a frame after `later`.
    assert_eq!(due_for_new, None, "nothing before it was created");
    let at = later + FRAME + FRAME / PHASES * 3;
    assert!(m.tick(at).iter().any(|f| f.leg == LegId(99)));
    assert_eq!(
        m.tick(at + FRAME)
            .iter()
            .filter(|f| f.leg == LegId(99))
            .count(),
        1
    );
}

#[test]
fn a_room_behind_catches_up_a_little_then_skips_keeping_wall_clock_numbering() {
    let now = Instant::now();
    let mut m = Mixer::new();
    m.set_room(
        ROOM,
        &[
            (A, Role::Party, LegState::default()),
            (B, Role::Party, LegState::default()),
        ],
        DtmfRoute::Others,
        now,
    );
    // 30 ms late: frames 0 (30 ms late) and 1 (10 ms late, on the limit).
    let f: Vec<(LegId, u32)> = m
        .tick(now + FRAME + Duration::from_millis(30))
        .iter()
        .map(|f| (f.leg, f.index))
        .collect();
    assert_eq!(f, vec![(A, 0), (B, 0), (A, 1), (B, 1)]);
    assert_eq!(m.stats().late_frames, 2);
    assert_eq!(m.stats().max_lateness_us, 30_000);
    // 200 ms more: three frames back to back, the rest skipped.
    let at = now + FRAME + Duration::from_millis(230);
    let idx: Vec<u32> = m.tick(at).iter().map(|f| f.index).collect();
    assert_eq!(idx, vec![2, 2, 3, 3, 4, 4]);
    assert_eq!(m.stats().skipped_frames, 2 * 7);
    // The next frame due is the one the wall clock says: 240 ms / 20 ms.
    assert_eq!(m.poll_timeout(), Some(now + FRAME * 13));
    let idx: Vec<u32> = m.tick(now + FRAME * 13).iter().map(|f| f.index).collect();
    assert_eq!(idx, vec![12, 12]);
}
