//! SDP bodies typical of the UAs the switch meets, for the unit tests.

/// SIPp's built-in `uac` scenario body.
pub const SIPP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// Linphone: many codecs, telephone-event at three rates, session-level
/// attribute, rtcp-fb lines.
pub const LINPHONE: &str = "v=0\r\n\
o=alice 3016 2374 IN IP4 192.168.1.20\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

/// Asterisk (chan_pjsip), with a=rtcp and maxptime.
pub const ASTERISK: &str = "v=0\r\n\
o=- 1234567890 1234567892 IN IP4 10.0.0.5\r\n\
s=Asterisk\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=rtcp:10001\r\n\
a=sendrecv\r\n";

/// A Cisco gateway: media-level c=, G729 first, CN, fmtp 0-15.
pub const CISCO: &str = "v=0\r\n\
o=CiscoSystemsSIP-GW-UserAgent 4350 3256 IN IP4 10.1.1.1\r\n\
s=SIP Call\r\n\
c=IN IP4 10.1.1.1\r\n\
t=0 0\r\n\
m=audio 17420 RTP/AVP 18 8 101 19\r\n\
c=IN IP4 10.1.1.2\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtpmap:19 CN/8000\r\n\
a=ptime:20\r\n";

/// A Polycom phone: session-level direction, no c= at session level but one
/// per stream, a video stream after the audio one, PT 127 for events.
pub const POLYCOM: &str = "v=0\r\n\
o=- 1405079486 1405079486 IN IP4 192.168.0.50\r\n\
s=Polycom IP Phone\r\n\
t=0 0\r\n\
a=sendonly\r\n\
m=audio 2222 RTP/AVP 9 102 0 8 18 127\r\n\
c=IN IP4 192.168.0.50\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:102 G7221/16000\r\n\
a=fmtp:102 bitrate=32000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:127 telephone-event/8000\r\n\
m=video 2226 RTP/AVP 109 34\r\n\
c=IN IP4 192.168.0.50\r\n\
b=TIAS:512000\r\n\
a=rtpmap:109 H264/90000\r\n\
a=rtpmap:34 H263/90000\r\n";

/// Video first, then audio: the audio stream is m-line 1.
pub const VIDEO_THEN_AUDIO: &str = "v=0\r\n\
o=- 7 7 IN IP4 192.0.2.7\r\n\
s=-\r\n\
c=IN IP4 192.0.2.7\r\n\
t=0 0\r\n\
m=video 5002 RTP/AVP 96\r\n\
a=rtpmap:96 VP8/90000\r\n\
m=audio 5000 RTP/AVP 8 96\r\n\
a=rtpmap:96 telephone-event/8000\r\n\
a=fmtp:96 0-15\r\n\
m=audio 5004 RTP/AVP 0\r\n";
