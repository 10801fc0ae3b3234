#!/usr/bin/env python3
"""Writes RTP pcaps of G.711 tones for SIPp's `play_pcap_audio` (pure Python).

    scripts/gen-tone-pcap.py                 # the committed set in fixtures/audio/
    scripts/gen-tone-pcap.py OUT.pcap FREQ_HZ SECONDS pcmu|pcma

Each file is Ethernet/IPv4/UDP/RTP, one 20 ms packet (160 samples at 8 kHz)
per frame, timestamps 20 ms apart. SIPp rewrites addresses and ports when it
replays, and keeps the RTP header (payload type, sequence, timestamp) as is.
The tone is a sine at -6 dBFS; its phase runs on across packets so that the
frequency measured on a recording is exactly FREQ_HZ.
"""

import math
import struct
import sys
from pathlib import Path

RATE = 8000
PTIME_MS = 20
SAMPLES = RATE * PTIME_MS // 1000


def linear_to_ulaw(sample: int) -> int:
    """G.711 mu-law (the classic Sun reference algorithm)."""
    BIAS, CLIP = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, CLIP) + BIAS
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def linear_to_alaw(sample: int) -> int:
    """G.711 A-law (the classic Sun reference algorithm)."""
    seg_end = [0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF]
    pcm = sample >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = 0
    while seg < 8 and pcm > seg_end[seg]:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0xF if seg < 2 else (pcm >> seg) & 0xF
    return aval ^ mask


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def packet(payload: bytes, src=("10.0.0.1", 5000), dst=("10.0.0.2", 6000)) -> bytes:
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    ip_src = bytes(int(x) for x in src[0].split("."))
    ip_dst = bytes(int(x) for x in dst[0].split("."))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, ip_src, ip_dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_tone(out: Path, freq: float, seconds: float, codec: str) -> None:
    encode, pt = (linear_to_ulaw, 0) if codec == "pcmu" else (linear_to_alaw, 8)
    amp = 0.5 * 32767
    ssrc = 0x5B0C0000 | (int(freq) & 0xFFFF)
    frames = int(seconds * 1000 / PTIME_MS)
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        n = 0
        for i in range(frames):
            samples = bytes(
                encode(int(round(amp * math.sin(2 * math.pi * freq * (n + k) / RATE))))
                for k in range(SAMPLES)
            )
            rtp = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | pt, (1000 + i) & 0xFFFF,
                              (160_000 + n) & 0xFFFFFFFF, ssrc)
            data = packet(rtp + samples)
            t_us = i * PTIME_MS * 1000
            f.write(struct.pack("<IIII", 1_700_000_000 + t_us // 1_000_000, t_us % 1_000_000,
                                len(data), len(data)))
            f.write(data)
            n += SAMPLES


def main() -> None:
    if len(sys.argv) == 5:
        write_tone(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4].lower())
        return
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    audio = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for name, freq, secs, codec in [
        ("tone_440_pcmu.pcap", 440, 3, "pcmu"),
        ("tone_1000_pcmu.pcap", 1000, 3, "pcmu"),
        ("tone_440_pcma.pcap", 440, 3, "pcma"),
        ("tone_440_pcmu_8s.pcap", 440, 8, "pcmu"),
        ("tone_1000_pcmu_8s.pcap", 1000, 8, "pcmu"),
    ]:
        write_tone(audio / name, freq, secs, codec)
        print(f"wrote {audio / name}")


if __name__ == "__main__":
    main()
