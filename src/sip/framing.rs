//! Message framing on stream transports (RFC 3261 §18.3) and the CRLF
//! keep-alive of RFC 5626 §3.5.1.
//!
//! A stream carries messages back to back; Content-Length is the only way to
//! find where a body ends. One read may hold several messages, and one message
//! may span several reads. A framing error means the stream can no longer be
//! trusted and the connection must close.
//!
//! The framer holds at most `max_size` bytes of an incomplete message, plus
//! the one byte that tells it the cap is passed, when its reader sizes each
//! read by [`StreamFramer::room`]: an endless header block fails as soon as
//! it passes the cap, and a Content-Length announcing more than the cap
//! fails as soon as the header block ends, before any body is awaited.

use bytes::{Buf, Bytes, BytesMut};

/// One unit read off a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete SIP message, ready for `sip::parse`.
    Message(Bytes),
    /// A double-CRLF keep-alive ping: answer with a single CRLF.
    Ping,
    /// A single-CRLF pong.
    Pong,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("message larger than the {0}-byte limit")]
    TooLarge(usize),
    #[error("unreadable Content-Length on a stream")]
    BadContentLength,
}

/// Accumulates stream bytes and cuts them into frames.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_size: usize,
}

impl StreamFramer {
    pub fn new(max_size: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(4096),
            max_size,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            return Ok(Some(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") {
            // A lone CRLF is a pong, unless it is the first half of a ping.
            if self.buf.len() == 2 || (self.buf.len() == 3 && self.buf.get(2) == Some(&b'\r')) {
                return Ok(None);
            }
            self.buf.advance(2);
            return Ok(Some(Frame::Pong));
        }
        let Some(head_end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > self.max_size {
                return Err(FramingError::TooLarge(self.max_size));
            }
            return Ok(None);
        };
        let body_len = content_length(self.buf.get(..head_end).unwrap_or_default())?;
        let total = head_end + 4 + body_len;
        if total > self.max_size {
            return Err(FramingError::TooLarge(self.max_size));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }

    /// Bytes held that do not yet form a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// How many bytes the next read may add: up to one past the cap, so
    /// that `next_frame` sees the excess and fails, never more (at least 1).
    pub fn room(&self) -> usize {
        (self.max_size + 1).saturating_sub(self.buf.len()).max(1)
    }
}

/// Content-Length from a header section; absent means no body.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, rest) = line.split_at(colon);
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = std::str::from_utf8(rest.get(1..).unwrap_or_default().trim_ascii())
                .map_err(|_| FramingError::BadContentLength)?;
            return value.parse().map_err(|_| FramingError::BadContentLength);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello";

    #[test]
    fn several_messages_in_one_read() {
        let mut f = StreamFramer::new(65535);
        f.push(&[MSG, MSG, b"\r\n\r\n"].concat());
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn one_message_across_reads() {
        let mut f = StreamFramer::new(65535);
        for chunk in MSG.chunks(7) {
            assert_eq!(f.next_frame().unwrap(), None);
            f.push(chunk);
        }
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn pong_is_told_from_half_a_ping() {
        let mut f = StreamFramer::new(65535);
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        f.push(b"\r\nOPTIONS");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Pong));
    }

    #[test]
    fn oversized_and_unframeable_streams_are_errors() {
        let mut f = StreamFramer::new(64);
        f.push(&[b'a'; 100]);
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge(64)));
        let mut f = StreamFramer::new(65535);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge(65535)));
        let mut f = StreamFramer::new(65535);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
    }

    /// A reader that sizes its reads by `room` (as `transport::stream`
    /// does) never holds more than the cap plus one byte, whatever the peer
    /// sends: the framing error comes first.
    fn feed_endlessly(f: &mut StreamFramer, mut next: impl FnMut(usize) -> Vec<u8>) -> usize {
        let mut most = 0;
        for _ in 0..10_000 {
            let chunk = next(f.room().min(16 * 1024));
            f.push(&chunk);
            most = most.max(f.pending());
            loop {
                match f.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(e, FramingError::TooLarge(4096));
                        return most;
                    }
                }
            }
        }
        panic!("the framer never refused the stream");
    }

    #[test]
    fn an_endless_header_block_is_cut_at_the_cap() {
        let mut f = StreamFramer::new(4096);
        let mut first = true;
        let most = feed_endlessly(&mut f, |n| {
            let mut v = Vec::new();
            if std::mem::take(&mut first) {
                v.extend_from_slice(b"INVITE sip:a@b SIP/2.0\r\n");
            }
            v.resize(n.max(v.len()), b'X');
            v.truncate(n);
            v
        });
        assert!(most <= 4097, "held {most} bytes");
    }

    #[test]
    fn a_huge_content_length_fails_before_its_body_is_awaited() {
        let mut f = StreamFramer::new(4096);
        let head = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 4000000000\r\n\r\n";
        f.push(head);
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge(4096)));
        // Dribbled in small pieces, the same.
        let mut f = StreamFramer::new(4096);
        let mut sent = 0;
        let most = feed_endlessly(&mut f, |n| {
            let piece: Vec<u8> = if sent < head.len() {
                head[sent..(sent + n.min(3)).min(head.len())].to_vec()
            } else {
                vec![b'b'; n]
            };
            sent += piece.len();
            piece
        });
        assert!(most <= head.len(), "held {most} bytes");
    }

    #[test]
    fn messages_back_to_back_pass_under_a_small_cap() {
        let mut f = StreamFramer::new(MSG.len());
        let stream = MSG.repeat(50);
        let mut got = 0;
        let mut at = 0;
        while at < stream.len() {
            let n = f.room().min(stream.len() - at);
            f.push(&stream[at..at + n]);
            at += n;
            while let Some(frame) = f.next_frame().unwrap() {
                assert_eq!(frame, Frame::Message(Bytes::from_static(MSG)));
                got += 1;
            }
        }
        assert_eq!(got, 50);
    }
}
