//! A small client of rtpengine's ng control protocol, for the relay
//! benchmark's anchor (`benches/relay_anchor.rs`): rtpengine relaying the
//! same generated G.711 streams as our relay, its sessions created here.
//!
//! The ng protocol is a bencoded dictionary over UDP, each message prefixed
//! with a cookie and a space (`<cookie> <dict>`); the reply carries the same
//! cookie, and rtpengine answers a retransmitted cookie from its cache, so a
//! request can be sent again after a timeout. `offer` (call-id, from-tag,
//! SDP) and `answer` (plus to-tag) return the SDP rewritten with rtpengine's
//! own address and port for the other side to send to; `delete` ends the
//! call. Reference: rtpengine's docs/ng_control_protocol.md.
//!
//! Owns: bencode encoding and decoding (bounded depth and lengths, typed
//! errors: nothing a reply holds can panic), the request/reply exchange, and
//! the two SDP lines the bench needs (an audio offer; the `c=`/`m=audio`
//! address of a reply). Must not: be used by the switch itself (it is a
//! load-generator's client, like the rest of [`super`]); parse SDP beyond
//! those two lines (the switch's SDP lives in `crate::sdp`, a layer media
//! does not import).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Deepest nesting a reply may have (rtpengine's `delete` reply nests about
/// eight levels).
const MAX_DEPTH: usize = 32;
/// Largest reply read (UDP datagram).
const MAX_REPLY: usize = 65_535;

/// Errors of the ng exchange.
#[derive(Debug, thiserror::Error)]
pub enum NgError {
    #[error("ng socket: {0}")]
    Io(#[from] io::Error),
    #[error("no ng reply from {server} after {tries} tries of {timeout:?}")]
    Timeout {
        server: SocketAddr,
        tries: u32,
        timeout: Duration,
    },
    #[error("malformed bencode at byte {at}: {what}")]
    Bencode { at: usize, what: &'static str },
    #[error("malformed ng reply: {0}")]
    Reply(&'static str),
    #[error("rtpengine refused `{command}`: {reason}")]
    Refused {
        command: &'static str,
        reason: String,
    },
    #[error("no audio address in rtpengine's SDP")]
    NoAudio,
}

/// A bencoded value. Strings are bytes (bencode has no text type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

impl From<&str> for Bencode {
    fn from(s: &str) -> Self {
        Bencode::Bytes(s.as_bytes().to_vec())
    }
}

impl Bencode {
    /// A dictionary from `(key, value)` pairs.
    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Bencode)>) -> Self {
        Bencode::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// The value under `key` when this is a dictionary.
    pub fn get(&self, key: &str) -> Option<&Bencode> {
        match self {
            Bencode::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    /// The text of a byte string (lossy: rtpengine's strings are ASCII).
    pub fn text(&self) -> Option<String> {
        match self {
            Bencode::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Append the encoding to `out`. Dictionary keys come out sorted, as
    /// bencode requires (a `BTreeMap` keeps them so).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Bencode::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Bencode::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Bencode::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Bencode::Bytes(k.clone()).encode_into(out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decode one value from the start of `input`; returns it and the bytes
    /// it took.
    pub fn decode(input: &[u8]) -> Result<(Bencode, usize), NgError> {
        let mut at = 0;
        let v = decode_at(input, &mut at, 0)?;
        Ok((v, at))
    }
}

fn bad(at: usize, what: &'static str) -> NgError {
    NgError::Bencode { at, what }
}

/// Digits of `input` from `*at` up to `end` (exclusive), as an integer.
fn number(input: &[u8], at: &mut usize, end: u8) -> Result<i64, NgError> {
    let start = *at;
    let stop = input
        .get(start..)
        .and_then(|rest| rest.iter().position(|&b| b == end))
        .ok_or_else(|| bad(start, "unterminated number"))?;
    let digits = input
        .get(start..start + stop)
        .ok_or_else(|| bad(start, "unterminated number"))?;
    let text = std::str::from_utf8(digits).map_err(|_| bad(start, "number is not ASCII"))?;
    let n = text.parse().map_err(|_| bad(start, "not a number"))?;
    *at = start + stop + 1;
    Ok(n)
}

fn decode_at(input: &[u8], at: &mut usize, depth: usize) -> Result<Bencode, NgError> {
    if depth > MAX_DEPTH {
        return Err(bad(*at, "nested too deep"));
    }
    let start = *at;
    match input.get(start) {
        None => Err(bad(start, "truncated")),
        Some(b'i') => {
            *at += 1;
            number(input, at, b'e').map(Bencode::Int)
        }
        Some(b'l') => {
            *at += 1;
            let mut list = Vec::new();
            loop {
                match input.get(*at) {
                    Some(b'e') => {
                        *at += 1;
                        return Ok(Bencode::List(list));
                    }
                    Some(_) => list.push(decode_at(input, at, depth + 1)?),
                    None => return Err(bad(*at, "unterminated list")),
                }
            }
        }
        Some(b'd') => {
            *at += 1;
            let mut dict = BTreeMap::new();
            loop {
                match input.get(*at) {
                    Some(b'e') => {
                        *at += 1;
                        return Ok(Bencode::Dict(dict));
                    }
                    Some(_) => {
                        let key_at = *at;
                        let Bencode::Bytes(key) = decode_at(input, at, depth + 1)? else {
                            return Err(bad(key_at, "dictionary key is not a string"));
                        };
                        let value = decode_at(input, at, depth + 1)?;
                        dict.insert(key, value);
                    }
                    None => return Err(bad(*at, "unterminated dictionary")),
                }
            }
        }
        Some(b'0'..=b'9') => {
            let len = number(input, at, b':')?;
            let len = usize::try_from(len).map_err(|_| bad(start, "negative length"))?;
            let end = at
                .checked_add(len)
                .filter(|&e| e <= input.len())
                .ok_or_else(|| bad(start, "string longer than the message"))?;
            let bytes = input
                .get(*at..end)
                .ok_or_else(|| bad(start, "string longer than the message"))?;
            *at = end;
            Ok(Bencode::Bytes(bytes.to_vec()))
        }
        Some(_) => Err(bad(start, "unknown type")),
    }
}

/// An SDP offer or answer for one G.711 audio stream (PCMU and RFC 4733
/// events, 20 ms) at `addr`, as the generator's side of a call would send.
pub fn audio_sdp(addr: SocketAddr, session: u64) -> String {
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let ip = addr.ip();
    format!(
        "v=0\r\no=- {session} 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        port = addr.port()
    )
}

/// The RTP address of the first `m=audio` of `sdp`: its port, and the
/// media-level `c=` line if it has one, else the session-level one.
pub fn sdp_audio_addr(sdp: &str) -> Option<SocketAddr> {
    let mut session_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut in_audio = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            if port.is_some() {
                break; // the next media section: the audio one is complete
            }
            let mut f = m.split_whitespace();
            in_audio = f.next() == Some("audio");
            if in_audio {
                port = f.next().and_then(|p| p.parse().ok());
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = c.split_whitespace().nth(2).and_then(|a| a.parse().ok());
            if in_audio {
                media_ip = ip;
            } else if port.is_none() {
                session_ip = ip;
            }
        }
    }
    Some(SocketAddr::new(media_ip.or(session_ip)?, port?))
}

/// A blocking ng client on its own UDP socket.
#[derive(Debug)]
pub struct NgClient {
    sock: UdpSocket,
    server: SocketAddr,
    /// rtpengine caches replies by cookie alone (to answer a retransmission
    /// from the cache), so each client's cookies start with its own port.
    prefix: String,
    next_cookie: u64,
    timeout: Duration,
    tries: u32,
    buf: Vec<u8>,
}

impl NgClient {
    /// A client of the ng listener at `server`, waiting `timeout` for each
    /// reply and sending a request at most `tries` times.
    pub fn new(server: SocketAddr, timeout: Duration, tries: u32) -> Result<Self, NgError> {
        let local: SocketAddr = if server.is_ipv4() {
            ([127, 0, 0, 1], 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let sock = UdpSocket::bind(local)?;
        sock.set_read_timeout(Some(timeout))?;
        let prefix = format!("sb{}-", sock.local_addr()?.port());
        Ok(NgClient {
            sock,
            server,
            prefix,
            next_cookie: 1,
            timeout,
            tries: tries.max(1),
            buf: vec![0; MAX_REPLY],
        })
    }

    /// Send `request` (a dictionary) and return the reply dictionary, whose
    /// `result` is `ok` (or `pong`); an `error` result is [`NgError::Refused`].
    pub fn request(
        &mut self,
        command: &'static str,
        request: &Bencode,
    ) -> Result<Bencode, NgError> {
        let cookie = format!("{}{}", self.prefix, self.next_cookie);
        self.next_cookie += 1;
        let mut msg = Vec::with_capacity(512);
        msg.extend_from_slice(cookie.as_bytes());
        msg.push(b' ');
        request.encode_into(&mut msg);
        for _ in 0..self.tries {
            self.sock.send_to(&msg, self.server)?;
            loop {
                let (n, from) = match self.sock.recv_from(&mut self.buf) {
                    Ok(r) => r,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break; // send it again
                    }
                    Err(e) => return Err(e.into()),
                };
                let reply = self.buf.get(..n).unwrap_or_default();
                // A late reply to an earlier, retransmitted request: skip it.
                let Some(body) = reply
                    .strip_prefix(cookie.as_bytes())
                    .and_then(|r| r.strip_prefix(b" "))
                else {
                    continue;
                };
                if from != self.server {
                    continue;
                }
                let (dict, _) = Bencode::decode(body)?;
                return match dict.get("result").and_then(Bencode::text).as_deref() {
                    Some("ok" | "pong") => Ok(dict),
                    Some(_) => Err(NgError::Refused {
                        command,
                        reason: dict
                            .get("error-reason")
                            .and_then(Bencode::text)
                            .unwrap_or_else(|| "no reason given".into()),
                    }),
                    None => Err(NgError::Reply("no `result`")),
                };
            }
        }
        Err(NgError::Timeout {
            server: self.server,
            tries: self.tries,
            timeout: self.timeout,
        })
    }

    /// `ping`: the listener is up.
    pub fn ping(&mut self) -> Result<(), NgError> {
        self.request("ping", &Bencode::dict([("command", "ping".into())]))
            .map(drop)
    }

    /// `offer` from `from_tag` with `sdp`: returns the address rtpengine
    /// gives the answerer to send to.
    pub fn offer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        sdp: &str,
    ) -> Result<SocketAddr, NgError> {
        let req = Bencode::dict([
            ("command", "offer".into()),
            ("call-id", call_id.into()),
            ("from-tag", from_tag.into()),
            ("sdp", sdp.into()),
        ]);
        Self::media_addr(&self.request("offer", &req)?)
    }

    /// `answer` from `to_tag` with `sdp`: returns the address rtpengine
    /// gives the offerer to send to.
    pub fn answer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
    ) -> Result<SocketAddr, NgError> {
        let req = Bencode::dict([
            ("command", "answer".into()),
            ("call-id", call_id.into()),
            ("from-tag", from_tag.into()),
            ("to-tag", to_tag.into()),
            ("sdp", sdp.into()),
        ]);
        Self::media_addr(&self.request("answer", &req)?)
    }

    /// `delete` the whole call.
    pub fn delete(&mut self, call_id: &str, from_tag: &str) -> Result<(), NgError> {
        let req = Bencode::dict([
            ("command", "delete".into()),
            ("call-id", call_id.into()),
            ("from-tag", from_tag.into()),
        ]);
        self.request("delete", &req).map(drop)
    }

    fn media_addr(reply: &Bencode) -> Result<SocketAddr, NgError> {
        let sdp = reply
            .get("sdp")
            .and_then(Bencode::text)
            .ok_or(NgError::Reply("no `sdp`"))?;
        sdp_audio_addr(&sdp).ok_or(NgError::NoAudio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: &Bencode) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode_into(&mut out);
        out
    }

    #[test]
    fn encodes_dictionaries_with_sorted_keys() {
        let v = Bencode::dict([
            ("sdp", "v=0".into()),
            ("command", "offer".into()),
            ("flags", Bencode::List(vec!["a".into(), Bencode::Int(-3)])),
        ]);
        assert_eq!(
            encode(&v),
            b"d7:command5:offer5:flagsl1:ai-3ee3:sdp3:v=0e".to_vec()
        );
    }

    #[test]
    fn decodes_what_it_encodes_and_a_real_reply() {
        let v = Bencode::dict([
            ("a", Bencode::List(vec![Bencode::Int(42), "x".into()])),
            ("b", Bencode::dict([("c", Bencode::Bytes(vec![0, 255]))])),
        ]);
        let bytes = encode(&v);
        assert_eq!(Bencode::decode(&bytes).unwrap(), (v, bytes.len()));

        // rtpengine 10.5's reply to an offer (after the cookie).
        let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 0\r\na=rtcp:40001\r\n";
        let reply = format!("d3:sdp{}:{sdp}6:result2:oke", sdp.len());
        let reply = reply.as_bytes();
        let (d, used) = Bencode::decode(reply).unwrap();
        assert_eq!(used, reply.len());
        assert_eq!(
            d.get("result").and_then(Bencode::text).as_deref(),
            Some("ok")
        );
        let sdp = d.get("sdp").and_then(Bencode::text).unwrap();
        assert_eq!(
            sdp_audio_addr(&sdp),
            Some("127.0.0.1:40000".parse().unwrap())
        );
    }

    #[test]
    fn malformed_bencode_is_an_error_never_a_panic() {
        let deep = "l".repeat(MAX_DEPTH + 5);
        for bad in [
            &b""[..],
            b"i12",
            b"iXe",
            b"5:abc",
            b"99999999999999999999:x",
            b"-1:x",
            b"l1:a",
            b"d1:ae",
            b"di1e1:ae",
            b"x",
            deep.as_bytes(),
        ] {
            assert!(
                Bencode::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn audio_address_prefers_the_media_level_connection() {
        let offer = audio_sdp("127.0.0.1:30000".parse().unwrap(), 7);
        assert_eq!(
            sdp_audio_addr(&offer),
            Some("127.0.0.1:30000".parse().unwrap())
        );
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 9 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\n\
                   m=audio 5004 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\nm=audio 6000 RTP/AVP 0\r\n";
        assert_eq!(sdp_audio_addr(sdp), Some("10.0.0.2:5004".parse().unwrap()));
        assert_eq!(sdp_audio_addr("v=0\r\nm=audio 5004 RTP/AVP 0\r\n"), None);
        assert_eq!(sdp_audio_addr("v=0\r\nc=IN IP4 10.0.0.1\r\n"), None);
    }

    /// The exchange against a stand-in server on loopback: the first request
    /// goes unanswered (the client sends it again, same cookie), a stale
    /// reply is skipped, and an error result comes back typed.
    #[test]
    fn client_retransmits_skips_stale_replies_and_types_refusals() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let (n1, from) = server.recv_from(&mut buf).unwrap();
            let first = buf[..n1].to_vec();
            // Dropped: the client must send the same bytes again.
            let (n2, _) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n2], &first[..]);
            let cookie = first.split(|&b| b == b' ').next().unwrap().to_vec();
            server.send_to(b"sb0 d6:result2:oke", from).unwrap();
            let mut reply = cookie.clone();
            let sdp = "c=IN IP4 127.0.0.1\r\nm=audio 4 RTP/AVP 0\r\n";
            reply.extend_from_slice(format!(" d3:sdp{}:{sdp}6:result2:oke", sdp.len()).as_bytes());
            server.send_to(&reply, from).unwrap();
            let (n3, _) = server.recv_from(&mut buf).unwrap();
            let cookie = buf[..n3].split(|&b| b == b' ').next().unwrap().to_vec();
            let mut reply = cookie;
            reply.extend_from_slice(b" d12:error-reason12:Unknown call6:result5:errore");
            server.send_to(&reply, from).unwrap();
        });
        let mut c = NgClient::new(addr, Duration::from_millis(200), 3).unwrap();
        let sdp = audio_sdp("127.0.0.1:30000".parse().unwrap(), 1);
        assert_eq!(
            c.offer("c1", "a", &sdp).unwrap(),
            "127.0.0.1:4".parse().unwrap()
        );
        match c.delete("c1", "a") {
            Err(NgError::Refused { command, reason }) => {
                assert_eq!((command, reason.as_str()), ("delete", "Unknown call"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        t.join().unwrap();
    }

    #[test]
    fn silence_is_a_timeout() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c =
            NgClient::new(server.local_addr().unwrap(), Duration::from_millis(20), 2).unwrap();
        assert!(matches!(c.ping(), Err(NgError::Timeout { tries: 2, .. })));
    }
}
