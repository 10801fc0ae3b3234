#!/usr/bin/env python3
"""One PJSIP (pjsua2) user agent, driven by JSON lines for the interop tests.

Started by tests/interop/pjsua.rs with the interpreter of .venv-interop/
(pjsua2-python from PyPI). Commands arrive on stdin, one JSON object a line,
each with an "id"; every command is answered by {"event": "reply", "id": N,
"ok": true, ...} or {"event": "reply", "id": N, "ok": false, "error": "..."}.
What the phone sees is reported as events on stdout, one JSON object a line:
ready, reg_state, incoming_call, call_state, media_state, dtmf, dtmf_event,
xfer_status, xfer_request, error.

Threads: PJSIP calls back into Python from the thread that polls its
sockets. Here that is always the main thread: no SIP worker threads
(uaConfig.threadCnt = 0), media on the SIP ioqueue (medConfig.hasIoqueue =
False) and mainThreadOnly = True, so that anything another PJSIP thread
(the null sound device's clock) would call back with is queued for
libHandleEvents. The main loop alternates a non-blocking read of stdin with
libHandleEvents(20 ms); no Python code ever runs on an unregistered thread.

Audio: the null sound device is the clock. Each phone plays its own tone
(ToneGenerator, --tone Hz) into every active call and can record what it
hears from one call into a WAV file (AudioMediaRecorder, 16-bit mono at
8 kHz); "stop_record" closes the file so that its header is complete.
"""

import argparse
import json
import os
import re
import select
import sys
import time
import traceback

# The events go to the harness on a private copy of stdout; file descriptor 1
# itself is pointed at stderr, so that what pjlib prints to the console before
# its log configuration applies (and any native library's chatter) cannot be
# mistaken for an event.
_EVENTS = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def emit(event, **fields):
    fields["event"] = event
    _EVENTS.write(json.dumps(fields) + "\n")
    _EVENTS.flush()


try:
    import pjsua2 as pj
except ImportError as e:  # the Rust side turns this into a test failure
    emit("fatal", error="cannot import pjsua2: %s" % e)
    sys.exit(3)


def guarded(where):
    """Reports an exception raised in a PJSIP callback instead of losing it."""

    def wrap(f):
        def inner(*a, **k):
            try:
                return f(*a, **k)
            except Exception:
                emit("error", where=where, error=traceback.format_exc())

        return inner

    return wrap


def header_values(msg, name):
    """Values of every header `name` (case-insensitive) in a raw SIP message."""
    head = msg.split("\r\n\r\n", 1)[0]
    out = []
    for line in head.split("\r\n")[1:]:
        n, sep, v = line.partition(":")
        if sep and n.strip().lower() == name.lower():
            out.append(v.strip())
    return out


def wav_complete(path):
    """Whether the RIFF size in the WAV header matches the file (the writer closed it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
        size = os.path.getsize(path)
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or size <= 44:
        return False
    return int.from_bytes(head[4:8], "little") == size - 8


MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}

CALL_STATE = {
    pj.PJSIP_INV_STATE_NULL: "null",
    pj.PJSIP_INV_STATE_CALLING: "calling",
    pj.PJSIP_INV_STATE_INCOMING: "incoming",
    pj.PJSIP_INV_STATE_EARLY: "early",
    pj.PJSIP_INV_STATE_CONNECTING: "connecting",
    pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
    pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected",
}


class LogFile(pj.LogWriter):
    def __init__(self, path):
        pj.LogWriter.__init__(self)
        self.f = open(path, "a", buffering=1)

    def write(self, entry):
        self.f.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
        self.f.flush()


class Agent:
    def __init__(self, args):
        self.args = args
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 8
        cfg.uaConfig.userAgent = "pjsua2-interop/" + self.ep.libVersion().full
        cfg.medConfig.hasIoqueue = False
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.channelCount = 1
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        # With a writer (below) the "console" is that writer: pjsua hands it
        # the entries up to consoleLevel. Without --log nothing is shown.
        cfg.logConfig.consoleLevel = 5 if args.log else 0
        cfg.logConfig.level = 5
        cfg.logConfig.msgLogging = True
        if args.log:
            # A writer of our own rather than logConfig.filename: PJSIP
            # writes that file through stdio buffers, so what the harness
            # reads (to show a failure, or the digest a phone chose) could
            # lag; this one flushes every entry. Other threads' entries are
            # queued to the main thread (mainThreadOnly).
            self.log_writer = LogFile(args.log)
            cfg.logConfig.writer = self.log_writer
        self.ep.libInit(cfg)
        # The PyPI wheel links OpenSSL 1.0.2, whose digests exist only once
        # OpenSSL is initialised; PJSIP 2.15 computes MD5 and SHA-256 digest
        # responses through OpenSSL and initialises it only when a TLS socket
        # is made. Without this every challenge is refused ("The algorithm
        # (MD5) referenced by algorithm_type is not supported", PJ_ENOTSUP).
        # Asking for the TLS ciphers runs that initialisation.
        try:
            self.ep.utilSslGetAvailableCiphers()
        except Exception as e:
            emit("error", where="openssl init", error=str(e))
        tcfg = pj.TransportConfig()
        tcfg.port = args.port
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        self.transport = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        # A phone configured for G.711 only, as most desk phones on a PBX are.
        for c in self.ep.codecEnum2():
            prio = 0
            if c.codecId.startswith("PCMU/8000"):
                prio = 255
            elif c.codecId.startswith("PCMA/8000"):
                prio = 254
            self.ep.codecSetPriority(c.codecId, prio)
        self.tone = pj.ToneGenerator()
        self.tone.createToneGenerator(8000, 1)
        td = pj.ToneDesc()
        td.freq1 = args.tone
        td.freq2 = args.tone
        td.on_msec = 30000
        td.off_msec = 0
        td.volume = 0
        tones = pj.ToneDescVector()
        tones.append(td)
        self.tone.play(tones, True)
        self.account = None
        self.calls = {}
        self.dead_calls = []
        self.recorders = {}  # call id -> (recorder, path)
        self.auto_answer_header = not args.no_auto_answer_header
        self.ring = not args.no_ring
        self.require_100rel = args.require_100rel
        self.running = True

    # ------------------------------------------------------------ commands

    def account_config(self, c, register):
        user = c["user"]
        server = c["server"]
        acfg = pj.AccountConfig()
        acfg.idUri = "sip:%s@%s" % (user, server)
        if register:
            acfg.regConfig.registrarUri = "sip:%s" % server
            acfg.regConfig.timeoutSec = int(c.get("expires", 600))
            acfg.regConfig.retryIntervalSec = 0  # a failed registration is reported, not retried
        else:
            acfg.regConfig.registrarUri = ""
        if "password" in c:
            cred = pj.AuthCredInfo("digest", c.get("realm", "*"), user, 0, c["password"])
            acfg.sipConfig.authCreds.append(cred)
        acfg.sipConfig.transportId = self.transport
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.port = int(c.get("rtp_port", 4000))
        acfg.mediaConfig.transportConfig.portRange = 2000
        # Session timers as the switch's shipped profile negotiates them.
        acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL
        if self.require_100rel:
            # RFC 3262: Require: 100rel on calls made, reliable 18x on calls answered.
            acfg.callConfig.prackUse = pj.PJSUA_100REL_MANDATORY
        return acfg

    def cmd_register(self, c):
        acfg = self.account_config(c, True)
        if self.account is None:
            self.account = Account(self)
            self.account.create(acfg)
        else:
            self.account.modify(acfg)
        return {}

    def cmd_local(self, c):
        """An account with no registrar: a phone that only listens (a trunk's far end)."""
        acfg = self.account_config(c, False)
        self.account = Account(self)
        self.account.create(acfg)
        return {}

    def cmd_reregister(self, c):
        self.need_account().setRegistration(True)
        return {}

    def cmd_unregister(self, c):
        self.need_account().setRegistration(False)
        return {}

    def cmd_call(self, c):
        acc = self.need_account()
        call = Call(self, acc)
        prm = pj.CallOpParam(True)
        for name, value in c.get("headers", {}).items():
            h = pj.SipHeader()
            h.hName = name
            h.hValue = value
            prm.txOption.headers.append(h)
        call.makeCall(c["uri"], prm)
        cid = call.getId()
        self.calls[cid] = call
        return {"call": cid}

    def cmd_answer(self, c):
        prm = pj.CallOpParam()
        prm.statusCode = int(c.get("code", 200))
        self.need_call(c).answer(prm)
        return {}

    def cmd_hangup(self, c):
        prm = pj.CallOpParam()
        if "code" in c:
            prm.statusCode = int(c["code"])
        self.need_call(c).hangup(prm)
        return {}

    def cmd_hold(self, c):
        self.need_call(c).setHold(pj.CallOpParam(True))
        return {}

    def cmd_resume(self, c):
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self.need_call(c).reinvite(prm)
        return {}

    def cmd_dtmf(self, c):
        prm = pj.CallSendDtmfParam()
        prm.digits = c["digits"]
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        if "duration" in c:
            prm.duration = int(c["duration"])
        self.need_call(c).sendDtmf(prm)
        return {}

    def cmd_xfer(self, c):
        self.need_call(c).xfer(c["uri"], pj.CallOpParam(True))
        return {}

    def cmd_xfer_replaces(self, c):
        dest = self.calls.get(int(c["dest"]))
        if dest is None:
            raise KeyError("no call %s" % c["dest"])
        self.need_call(c).xferReplaces(dest, pj.CallOpParam(True))
        return {}

    def cmd_record(self, c):
        cid = int(c["call"])
        call = self.need_call(c)
        self.stop_recorder(cid)
        rec = pj.AudioMediaRecorder()
        rec.createRecorder(c["path"])
        self.recorders[cid] = (rec, c["path"])
        call.connect_media()
        return {"path": c["path"]}

    def cmd_stop_record(self, c):
        path = self.stop_recorder(int(c["call"]))
        if path is None:
            raise KeyError("call %s is not being recorded" % c["call"])
        # PJSIP 2.15 removes conference ports asynchronously (on the media
        # clock): the WAV writer writes its sizes into the header when the
        # port is finally destroyed. Wait (bounded) for a complete header.
        deadline = time.monotonic() + 5.0
        while not wav_complete(path):
            if time.monotonic() > deadline:
                raise TimeoutError("the WAV header of %s was not written within 5 s" % path)
            self.ep.libHandleEvents(10)
        return {"path": path, "bytes": os.path.getsize(path)}

    def cmd_calls(self, c):
        out = []
        for cid, call in self.calls.items():
            try:
                ci = call.getInfo()
                out.append({"call": cid, "state": CALL_STATE.get(ci.state, str(ci.state)),
                            "code": ci.lastStatusCode, "remote": ci.remoteUri})
            except Exception as e:
                out.append({"call": cid, "error": str(e)})
        return {"calls": out}

    def cmd_quit(self, c):
        self.running = False
        return {}

    # ------------------------------------------------------------- helpers

    def need_account(self):
        if self.account is None:
            raise RuntimeError("no account: send register or local first")
        return self.account

    def need_call(self, c):
        cid = int(c["call"])
        call = self.calls.get(cid)
        if call is None:
            raise KeyError("no call %d (calls: %s)" % (cid, sorted(self.calls)))
        return call

    def stop_recorder(self, cid):
        entry = self.recorders.pop(cid, None)
        if entry is None:
            return None
        rec, path = entry
        call = self.calls.get(cid)
        if call is not None:
            try:
                call.audio().stopTransmit(rec)
            except Exception:
                pass
        # Destroying the recorder closes the WAV file and writes its sizes.
        del rec
        entry = None
        return path

    def handle(self, line):
        try:
            c = json.loads(line)
        except ValueError as e:
            emit("error", where="stdin", error="not JSON: %s: %r" % (e, line))
            return
        rid = c.get("id")
        f = getattr(self, "cmd_" + str(c.get("cmd")), None)
        if f is None:
            emit("reply", id=rid, ok=False, error="unknown command %r" % c.get("cmd"))
            return
        try:
            extra = f(c) or {}
            emit("reply", id=rid, ok=True, **extra)
        except Exception as e:
            emit("reply", id=rid, ok=False, error="%s: %s" % (type(e).__name__, e))

    def run(self):
        emit("ready", port=self.args.port, version=self.ep.libVersion().full)
        buf = b""
        fd = sys.stdin.fileno()
        os.set_blocking(fd, False)
        while self.running:
            r, _, _ = select.select([fd], [], [], 0)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:  # the harness went away
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        self.handle(line.decode("utf-8", "replace"))
            self.ep.libHandleEvents(20)
            # Call objects are dropped here, outside PJSIP's callbacks.
            self.dead_calls.clear()
        for cid in list(self.recorders):
            self.stop_recorder(cid)
        self.ep.hangupAllCalls()
        for _ in range(10):
            self.ep.libHandleEvents(20)
        self.calls.clear()
        self.dead_calls.clear()
        self.tone = None
        self.account = None
        self.ep.libDestroy()
        emit("bye")


class Account(pj.Account):
    def __init__(self, agent):
        pj.Account.__init__(self)
        self.agent = agent

    @guarded("onRegState")
    def onRegState(self, prm):
        info = self.getInfo()
        emit("reg_state", code=prm.code, reason=prm.reason, expires=prm.expiration,
             active=info.regIsActive)

    @guarded("onIncomingCall")
    def onIncomingCall(self, prm):
        agent = self.agent
        call = Call(agent, self, prm.callId)
        agent.calls[prm.callId] = call
        msg = prm.rdata.wholeMsg
        ci = call.getInfo()
        call_info = header_values(msg, "Call-Info")
        emit("incoming_call", call=prm.callId, remote=ci.remoteUri, local=ci.localUri,
             request_uri=msg.split("\r\n", 1)[0], call_info=call_info,
             alert_info=header_values(msg, "Alert-Info"),
             replaces=header_values(msg, "Replaces"),
             src=prm.rdata.srcAddress)
        auto = agent.auto_answer_header and any(
            re.search(r"answer-after\s*=\s*0\b", v) for v in call_info)
        op = pj.CallOpParam()
        if auto:
            op.statusCode = 200
            call.answer(op)
            emit("auto_answered", call=prm.callId)
        elif agent.ring:
            op.statusCode = 180
            call.answer(op)


class Call(pj.Call):
    def __init__(self, agent, acc, call_id=pj.PJSUA_INVALID_ID):
        pj.Call.__init__(self, acc, call_id)
        self.agent = agent

    def audio(self):
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
                pj.PJSUA_CALL_MEDIA_LOCAL_HOLD):
                return self.getAudioMedia(mi.index)
        raise RuntimeError("call %d has no audio" % self.getId())

    def connect_media(self):
        """The tone into the call, and the call into its recorder (if any)."""
        try:
            aud = self.audio()
        except RuntimeError:
            return False
        self.agent.tone.startTransmit(aud)
        rec = self.agent.recorders.get(self.getId())
        if rec is not None:
            aud.startTransmit(rec[0])
        return True

    @guarded("onCallState")
    def onCallState(self, prm):
        ci = self.getInfo()
        state = CALL_STATE.get(ci.state, str(ci.state))
        emit("call_state", call=ci.id, state=state, code=ci.lastStatusCode,
             reason=ci.lastReason, remote=ci.remoteUri, sip_call_id=ci.callIdString)
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.agent.stop_recorder(ci.id)
            call = self.agent.calls.pop(ci.id, None)
            if call is not None:
                self.agent.dead_calls.append(call)

    @guarded("onCallMediaState")
    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                emit("media_state", call=ci.id, status=MEDIA_STATUS.get(mi.status, str(mi.status)),
                     dir=mi.dir)
        self.connect_media()

    @guarded("onDtmfDigit")
    def onDtmfDigit(self, prm):
        emit("dtmf", call=self.getId(), digit=prm.digit, method=prm.method)

    @guarded("onDtmfEvent")
    def onDtmfEvent(self, prm):
        # Reported once per digit, at its end (PJMEDIA_STREAM_DTMF_IS_END, 2,
        # which the Python module does not export).
        if not prm.flags & 2:
            return
        emit("dtmf_event", call=self.getId(), digit=prm.digit, method=prm.method,
             duration=prm.duration, flags=prm.flags)

    @guarded("onCallTransferStatus")
    def onCallTransferStatus(self, prm):
        emit("xfer_status", call=self.getId(), code=prm.statusCode, reason=prm.reason,
             final=prm.finalNotify)

    @guarded("onCallTransferRequest")
    def onCallTransferRequest(self, prm):
        emit("xfer_request", call=self.getId(), target=prm.dstUri, code=prm.statusCode)

    @guarded("onCallReplaced")
    def onCallReplaced(self, prm):
        # pjsua2 wants the application's object for the call that replaces this one.
        new = Call(self.agent, self.agent.account, prm.newCallId)
        self.agent.calls[prm.newCallId] = new
        prm.newCall = new
        emit("call_replaced", call=self.getId(), new_call=prm.newCallId)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True, help="SIP UDP port on 127.0.0.1")
    ap.add_argument("--tone", type=int, required=True, help="frequency this phone plays, Hz")
    ap.add_argument("--log", help="PJSIP log file (level 5, SIP messages included)")
    ap.add_argument("--no-auto-answer-header", action="store_true",
                    help="ignore Call-Info answer-after=0")
    ap.add_argument("--no-ring", action="store_true", help="do not answer 180 by itself")
    ap.add_argument("--require-100rel", action="store_true",
                    help="RFC 3262 mandatory (PJSUA_100REL_MANDATORY) on this phone's account")
    args = ap.parse_args()
    try:
        agent = Agent(args)
    except Exception:
        emit("fatal", error=traceback.format_exc())
        sys.exit(4)
    agent.run()


if __name__ == "__main__":
    main()
