//! A minimal SIP user agent over raw UDP, for flows one SIPp process cannot hold:
//! two dialogs at once and an attended transfer (REFER with Replaces naming the
//! other dialog). It sends requests with retransmission (500 ms, bounded), ACKs
//! 2xx (again on a retransmitted 2xx), answers incoming NOTIFY, BYE, INFO,
//! OPTIONS and re-INVITE with 200, and keeps every message it saw.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::sippbg::{cseq_method, header};

#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// The far end's Contact URI (the remote target).
    pub target: String,
    pub to_uri: String,
    pub cseq: u32,
    /// The 200 OK that set the dialog up.
    pub answer: String,
}

pub struct Ua {
    pub sock: UdpSocket,
    pub user: String,
    pub server: SocketAddr,
    pub local: SocketAddr,
    /// Every message received: requests and responses, in order.
    pub log: Vec<String>,
    /// Incoming requests not yet looked at by `wait_request`.
    inbox: Vec<String>,
    dialogs_acked: Vec<(String, String)>,
    n: u32,
    /// The RTP port written in answers to re-INVITEs.
    pub rtp_port_hint: u16,
}

fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn tag_of(v: &str) -> String {
    v.split(';')
        .find_map(|p| p.trim().strip_prefix("tag="))
        .unwrap_or("")
        .to_string()
}

fn uri_of(v: &str) -> String {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if b > a => v[a + 1..b].to_string(),
        _ => v.split(';').next().unwrap_or(v).trim().to_string(),
    }
}

impl Ua {
    pub fn bind(port: u16, user: &str, server: SocketAddr) -> Ua {
        let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind ua");
        let local = sock.local_addr().unwrap();
        Ua {
            sock,
            user: user.into(),
            server,
            local,
            log: Vec::new(),
            inbox: Vec::new(),
            dialogs_acked: Vec::new(),
            n: 0,
            rtp_port_hint: 9,
        }
    }

    fn branch(&mut self) -> String {
        self.n += 1;
        format!("z9hG4bK-ua-{}-{}", std::process::id(), self.n)
    }

    fn send(&self, msg: &str) {
        self.sock
            .send_to(msg.as_bytes(), self.server)
            .expect("ua send");
    }

    fn recv_one(&mut self, deadline: Instant) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.trim().is_empty() {
                continue;
            }
            self.log.push(text.clone());
            if status(&text).is_none() {
                self.answer_request(&text);
                self.inbox.push(text);
                continue;
            }
            return Some(text);
        }
    }

    /// 200 to what a phone just accepts; re-INVITEs get our SDP back with the
    /// mirrored direction.
    fn answer_request(&mut self, req: &str) {
        let method = req.split_whitespace().next().unwrap_or("");
        if method == "ACK" {
            return;
        }
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for v in super::sippbg::headers(req, h) {
                resp.push_str(&format!("{h}: {v}\r\n"));
            }
        }
        if method == "INVITE" {
            let offer = super::sippbg::body(req);
            let dir = match super::sippbg::sdp_direction(req) {
                "sendonly" => "recvonly",
                "recvonly" => "sendonly",
                "inactive" => "inactive",
                _ => "sendrecv",
            };
            let port = self.rtp_port_hint;
            let sdp = sdp(self.local, port, dir, &format!("{}", self.n + 2));
            let _ = offer;
            resp.push_str(&format!(
                "Contact: <sip:{}@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                self.user,
                self.local,
                sdp.len()
            ));
        } else {
            resp.push_str("Content-Length: 0\r\n\r\n");
        }
        self.send(&resp);
    }

    /// Sends a request and waits for its final response (retransmitting every 500 ms
    /// until a provisional or final one arrives; 10 s bound). 2xx to INVITE is ACKed.
    fn transact(
        &mut self,
        method: &str,
        req_uri: &str,
        build: impl Fn(&str) -> String,
        cseq: u32,
        call_id: &str,
    ) -> String {
        let branch = self.branch();
        let msg = build(&branch);
        self.send(&msg);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut next_retrans = Instant::now() + Duration::from_millis(500);
        let mut provisional = false;
        loop {
            let wake = if provisional {
                deadline
            } else {
                next_retrans.min(deadline)
            };
            match self.recv_one(wake) {
                Some(r) => {
                    let same = header(&r, "Call-ID") == Some(call_id)
                        && header(&r, "CSeq").is_some_and(|c| c.starts_with(&format!("{cseq} ")))
                        && cseq_method(&r) == method;
                    if !same {
                        self.reack(&r);
                        continue;
                    }
                    let code = status(&r).unwrap();
                    if code < 200 {
                        provisional = true;
                        continue;
                    }
                    if method == "INVITE" && code >= 300 {
                        // ACK for a non-2xx: same branch, hop by hop.
                        let ack = format!(
                            "ACK {req_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: {f}\r\nTo: {t}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
                            l = self.local,
                            f = header(&r, "From").unwrap_or(""),
                            t = header(&r, "To").unwrap_or(""),
                        );
                        self.send(&ack);
                    }
                    return r;
                }
                None => {
                    assert!(
                        Instant::now() < deadline,
                        "UA: no final response to {method} in 10 s; log:\n{}",
                        self.log.join("\n----\n")
                    );
                    if !provisional {
                        self.send(&msg);
                        next_retrans = Instant::now() + Duration::from_millis(500);
                    }
                }
            }
        }
    }

    /// A retransmitted 2xx to an INVITE we already ACKed: ACK again.
    fn reack(&mut self, r: &str) {
        if status(r).is_some_and(|c| (200..300).contains(&c)) && cseq_method(r) == "INVITE" {
            let key = (
                header(r, "Call-ID").unwrap_or("").to_string(),
                header(r, "CSeq").unwrap_or("").to_string(),
            );
            if self.dialogs_acked.contains(&key) {
                let d = self.dialog_from_answer(r, 0);
                self.send_ack(&d, r);
            }
        }
    }

    fn dialog_from_answer(&self, r: &str, cseq: u32) -> Dialog {
        Dialog {
            call_id: header(r, "Call-ID").unwrap_or("").into(),
            local_tag: tag_of(header(r, "From").unwrap_or("")),
            remote_tag: tag_of(header(r, "To").unwrap_or("")),
            target: uri_of(header(r, "Contact").unwrap_or("")),
            to_uri: uri_of(header(r, "To").unwrap_or("")),
            cseq,
            answer: r.to_string(),
        }
    }

    fn send_ack(&self, d: &Dialog, r: &str) {
        let cseq_n = header(r, "CSeq")
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("1");
        let ack = format!(
            "ACK {t} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK-ack-{c}-{cseq_n};rport\r\nMax-Forwards: 70\r\nFrom: {f}\r\nTo: {to}\r\nCall-ID: {c}\r\nCSeq: {cseq_n} ACK\r\nContent-Length: 0\r\n\r\n",
            t = d.target,
            l = self.local,
            f = header(r, "From").unwrap_or(""),
            to = header(r, "To").unwrap_or(""),
            c = d.call_id,
        );
        self.send(&ack);
    }

    /// INVITE `number` at the switch offering PCMU/PCMA/101 at `rtp_port`; panics
    /// unless it is answered 200 (ACKed here).
    pub fn invite(&mut self, number: &str, rtp_port: u16) -> Dialog {
        self.rtp_port_hint = rtp_port;
        self.n += 1;
        let call_id = format!("ua-{}-{}@127.0.0.1", std::process::id(), self.n);
        let tag = format!("uatag{}", self.n);
        let uri = format!("sip:{number}@{}", self.server);
        let sdp = sdp(self.local, rtp_port, "sendrecv", "1");
        let (l, u, cid) = (self.local, self.user.clone(), call_id.clone());
        let uri2 = uri.clone();
        let build = move |branch: &str| {
            format!(
                "INVITE {uri2} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@127.0.0.1>;tag={tag}\r\nTo: <{uri2}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:{u}@{l}>\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
        };
        let r = self.transact("INVITE", &uri, build, 1, &call_id);
        assert_eq!(status(&r), Some(200), "INVITE {number} answered:\n{r}");
        let d = self.dialog_from_answer(&r, 1);
        self.send_ack(&d, &r);
        self.dialogs_acked.push((
            d.call_id.clone(),
            header(&r, "CSeq").unwrap_or("").to_string(),
        ));
        d
    }

    /// An in-dialog request; returns the final response.
    pub fn request(
        &mut self,
        d: &mut Dialog,
        method: &str,
        extra: &str,
        body: Option<(&str, &str)>,
    ) -> String {
        d.cseq += 1;
        let (l, u) = (self.local, self.user.clone());
        let d2 = d.clone();
        let method_s = method.to_string();
        let extra = extra.to_string();
        let body = body.map(|(t, b)| (t.to_string(), b.to_string()));
        let build = move |branch: &str| {
            let (ct, b) = match &body {
                Some((t, b)) => (format!("Content-Type: {t}\r\n"), b.clone()),
                None => (String::new(), String::new()),
            };
            format!(
                "{m} {t} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@127.0.0.1>;tag={lt}\r\nTo: <{to}>;tag={rt}\r\nCall-ID: {c}\r\nCSeq: {n} {m}\r\nContact: <sip:{u}@{l}>\r\n{extra}{ct}Content-Length: {len}\r\n\r\n{b}",
                m = method_s,
                t = d2.target,
                lt = d2.local_tag,
                to = d2.to_uri,
                rt = d2.remote_tag,
                c = d2.call_id,
                n = d2.cseq,
                len = b.len(),
            )
        };
        let target = d.target.clone();
        let call_id = d.call_id.clone();
        self.transact(method, &target, build, d.cseq, &call_id)
    }

    /// Waits (bounded) for an incoming request (already answered 200) satisfying `pred`.
    pub fn wait_request(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.inbox.iter().position(|m| pred(m)) {
                return self.inbox.remove(i);
            }
            if Instant::now() >= deadline {
                panic!(
                    "UA {}: no {what} in {timeout:?}; log:\n{}",
                    self.user,
                    self.log.join("\n----\n")
                );
            }
            if let Some(r) = self.recv_one(deadline) {
                self.reack(&r);
            }
        }
    }
}

fn sdp(local: SocketAddr, port: u16, dir: &str, version: &str) -> String {
    format!(
        "v=0\r\no=- 4545 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={dir}\r\n",
        ip = local.ip()
    )
}

/// `Replaces` for a dialog as the transferor sees it (RFC 3891: call-id;to-tag;from-tag,
/// the to-tag being the far end's), escaped for a Refer-To URI header.
pub fn replaces_param(d: &Dialog) -> String {
    let raw = format!(
        "{};to-tag={};from-tag={}",
        d.call_id, d.remote_tag, d.local_tag
    );
    raw.replace('%', "%25")
        .replace('@', "%40")
        .replace(';', "%3B")
        .replace('=', "%3D")
}
