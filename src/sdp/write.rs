//! Serialising an [`Sdp`] with CRLF line ends (RFC 4566 §5).
//!
//! Lines come out in the RFC 4566 order whatever order they were parsed in
//! (a stable sort, so a body that was in order comes out byte for byte, bar
//! LF becoming CRLF and trailing blanks dropped). A parsed body that lacked
//! `s=` or `t=` gains `s=-` / `t=0 0`: what we send is always well formed.

use super::model::{Connection, Line, Media, Sdp};

impl Sdp {
    /// The body to put in a SIP message, CRLF line ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        let o = &self.origin;
        push(&mut out, 'v', "0");
        push(
            &mut out,
            'o',
            &format!(
                "{} {} {} {} {} {}",
                o.username, o.session_id, o.session_version, o.nettype, o.addrtype, o.address
            ),
        );
        push(&mut out, 's', &self.session_name);

        let mut lines: Vec<&Line> = self.lines.iter().collect();
        lines.sort_by_key(|l| session_rank(l.kind));
        let (before_c, after_c) =
            lines.split_at(lines.partition_point(|l| session_rank(l.kind) < C));
        for line in before_c {
            push(&mut out, char::from(line.kind), &line.value);
        }
        if let Some(c) = &self.connection {
            push_connection(&mut out, c);
        }
        // A missing t= is put where it belongs: before the first line ranked after it.
        let mut t_written = after_c.iter().any(|l| l.kind == b't');
        for line in after_c {
            if !t_written && session_rank(line.kind) > T {
                push(&mut out, 't', "0 0");
                t_written = true;
            }
            push(&mut out, char::from(line.kind), &line.value);
        }
        if !t_written {
            push(&mut out, 't', "0 0");
        }

        for media in &self.media {
            write_media(&mut out, media);
        }
        out.into_bytes()
    }
}

const C: u8 = 5;
const T: u8 = 7;

/// RFC 4566 §5 session order: v o s i u e p c b t r z k a. `t=` and `r=` share
/// a rank because each `r=` belongs to the `t=` before it. Unknown letters go
/// with the attributes, the part of the description meant for extensions.
fn session_rank(kind: u8) -> u8 {
    match kind {
        b'i' => 1,
        b'u' => 2,
        b'e' => 3,
        b'p' => 4,
        b'c' => C,
        b'b' => 6,
        b't' | b'r' => T,
        b'z' => 8,
        b'k' => 9,
        _ => 10,
    }
}

/// RFC 4566 §5 media order: m i c b k a.
fn media_rank(kind: u8) -> u8 {
    match kind {
        b'i' => 1,
        b'b' => 3,
        b'k' => 4,
        _ => 5,
    }
}

fn write_media(out: &mut String, media: &Media) {
    let mut m = format!("{} {}", media.kind, media.port);
    if let Some(count) = media.port_count {
        m.push_str(&format!("/{count}"));
    }
    m.push(' ');
    m.push_str(&media.proto);
    for f in &media.formats {
        m.push(' ');
        m.push_str(f);
    }
    push(out, 'm', &m);
    let mut lines: Vec<&Line> = media.lines.iter().collect();
    lines.sort_by_key(|l| media_rank(l.kind));
    // c= goes between i= (rank 1) and b= (rank 3).
    let split = lines.partition_point(|l| media_rank(l.kind) < 2);
    let (before, after) = lines.split_at(split);
    for line in before {
        push(out, char::from(line.kind), &line.value);
    }
    if let Some(c) = &media.connection {
        push_connection(out, c);
    }
    for line in after {
        push(out, char::from(line.kind), &line.value);
    }
}

fn push_connection(out: &mut String, c: &Connection) {
    push(out, 'c', &format!("IN {} {}", c.addrtype, c.address));
}

fn push(out: &mut String, kind: char, value: &str) {
    out.push(kind);
    out.push('=');
    out.push_str(value);
    out.push_str("\r\n");
}
