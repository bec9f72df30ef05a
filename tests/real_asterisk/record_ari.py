#!/usr/bin/env python3
# record_ari.py -- records byte-exact ARI (and AMI Async AGI) traffic of inbound calls,
# prompts and error replies from a REAL Asterisk, for tests/fixtures/asterisk (issue 11).
# Not used by CI; run by hand, see tests/README.md ("Issue 11: ARI and inbound recordings").
#
# ARI scenarios write, like the other ari-* recordings (fixtures README, "File formats"):
#   <name>.events.jsonl    one WebSocket text frame per line, exactly as received
#   <name>.http.jsonl      the WebSocket handshake and every REST call, raw request and response
#   <name>.timeline.jsonl  both merged in arrival order (t = seconds since the scenario began)
# Scenarios with several WebSockets (the ari-takeover-* ones: one per node's app) name each
# one (n1, n2, ...): each writes <name>.<socket>.events.jsonl instead of <name>.events.jsonl,
# and its handshake, frames and close carry "socket": "<socket>" in the timeline (a close as
# {"kind": "ws-close", "socket", "label", "abrupt"}; abrupt = dropped with no close frame).
# AMI scenarios write <name>.txt / .sent.txt / .timeline.jsonl (record_ami.py's format).
# The test caller of an inbound scenario is placed over a second AMI connection, recorded
# beside it as <name>.caller.txt / .caller.sent.txt / .caller.timeline.jsonl: its
# OriginateResponse and the caller half's Newstate/Hangup say what the caller saw (answered
# or not, and the cause).
#
# Needs a running Asterisk with the project's dialplan (callback-access, callback-access-ami),
# the fixtures' phones and the test callers:
#   cd <worktree> && EXTRA_DIALPLAN=tests/real_asterisk/testcallers.conf \
#     AST_PREFIX=/tmp/ast ../shared/asterisk/peer.sh start . build/share/callback/sounds
#   python3 tests/real_asterisk/record_ari.py ari-inbound-dtmf [--out tests/fixtures/asterisk]
# Scenarios: see SCENARIOS at the end. Python 3 standard library only.
import argparse
import base64
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "asterisk", "tools"))
import record_ami as ami  # noqa: E402  (action, Conn, get, login, logoff)

HOST, ARI_PORT, AMI_PORT = "127.0.0.1", 8088, 5038
USER, SECRET = "callback", "callbacksecret"
APP = "callback-app"
AUTH = "Basic " + base64.b64encode(("%s:%s" % (USER, SECRET)).encode()).decode()
CALLER_ID = '"Test caller" <1234>'


def q(value):
    return urllib.parse.quote(value, safe="")


class Recording:
    """One scenario: the ARI WebSocket, REST calls, and any AMI connections, on one clock."""

    def __init__(self, name, out):
        self.name, self.out = name, out
        self.t0 = time.monotonic()
        self.cv = threading.Condition()
        self.http_log, self.timeline, self.frames, self.events = [], [], [], []
        self.ws = None
        self.other_frames = 0  # frames on WebSockets other than the recorded one
        # Named WebSockets (connect_ws(socket_name=...)): each one's frames and parsed events, kept
        # apart and saved as <name>.<socket>.events.jsonl; their timeline entries say "socket".
        self.named = {}  # socket name -> {"sock", "frames", "events", "open"}
        self.amis = []  # (Conn, [messages]) read by threads
        self.stop = False
        self.threads = []

    def now(self):
        return round(time.monotonic() - self.t0, 6)

    # --- ARI WebSocket (RFC 6455, client side, just enough) ---------------------------------
    def connect_ws(self, app=APP, label=None, socket_name=None):
        """The app's event WebSocket. The first one is the recorded stream (events.jsonl); with a
        label, another WebSocket for the same app: its handshake is logged under that label, its
        frames are only counted (other_frames), and the socket is returned for close_other_ws.
        With socket_name, one of several recorded WebSockets (of any app): its frames go to
        <name>.<socket_name>.events.jsonl, and its handshake, frames and close in the timeline
        carry "socket": socket_name; wait(..., socket=socket_name) waits on its events."""
        sock = socket.create_connection((HOST, ARI_PORT))
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /ari/events?app=%s&api_key=%s:%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (app, USER, SECRET, HOST, ARI_PORT, key))
        sock.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = sock.recv(4096)
            if not data:
                raise RuntimeError("WebSocket handshake: connection closed")
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        entry = {"t": self.now(), "kind": "ws-handshake", "request": req, "response": head.decode() + "\r\n\r\n"}
        if label:
            entry["label"] = label
        if socket_name:
            entry["socket"] = socket_name
        with self.cv:
            self.http_log.append(entry)
            self.timeline.append(entry)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError("WebSocket handshake refused: " + head.decode())
        if socket_name:
            print("  %-45s 101" % ("%s: %s" % (socket_name, label or "app " + app)))
            with self.cv:
                self.named[socket_name] = {"sock": sock, "frames": [], "events": [], "open": True}
            th = threading.Thread(target=self._read_ws, args=(sock, rest, True, socket_name), daemon=True)
            th.start()
            self.threads.append(th)
            return sock
        if label:
            print("  %-45s 101" % label)
            th = threading.Thread(target=self._read_ws, args=(sock, rest, False), daemon=True)
            th.start()
            self.threads.append(th)
            return sock
        self.ws = sock
        th = threading.Thread(target=self._read_ws, args=(sock, rest), daemon=True)
        th.start()
        self.threads.append(th)
        return sock

    def close_other_ws(self, sock, label):
        """Closes a WebSocket of connect_ws(label=...) with a close frame (status 1000)."""
        self._send_frame(0x8, (1000).to_bytes(2, "big"), sock)
        time.sleep(0.2)
        sock.close()
        entry = {"t": self.now(), "kind": "ws-close", "label": label}
        with self.cv:
            self.timeline.append(entry)
        print("  %-45s closed (%d frames came on it)" % (label, self.other_frames))

    def close_named_ws(self, socket_name, label, abrupt=False):
        """Closes a named WebSocket: with a close frame (status 1000), or abruptly (abrupt=True:
        no close frame, the TCP connection shut down at once, as the kernel does for a process
        killed with kill -9). The timeline gets {"kind": "ws-close", "socket", "label", "abrupt"}."""
        ws = self.named[socket_name]
        if not abrupt:
            try:
                self._send_frame(0x8, (1000).to_bytes(2, "big"), ws["sock"])
            except OSError:
                pass
            time.sleep(0.2)
        try:
            ws["sock"].shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        ws["sock"].close()
        entry = {"t": self.now(), "kind": "ws-close", "socket": socket_name, "label": label, "abrupt": abrupt}
        with self.cv:
            ws["open"] = False
            self.timeline.append(entry)
        print("  %-45s %s (%d frames came on it)" % ("%s: %s" % (socket_name, label),
                                                     "dropped" if abrupt else "closed", len(ws["frames"])))

    @staticmethod
    def _frame(opcode, payload):
        """One client frame, FIN set, masked (RFC 6455 5.2)."""
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def _send_frame(self, opcode, payload, sock=None):
        (sock or self.ws).sendall(self._frame(opcode, payload))

    def _read_ws(self, sock, buf, recorded=True, socket_name=None):
        message, msg_opcode = b"", 0

        def need(n):
            nonlocal buf
            while len(buf) < n:
                data = sock.recv(65536)
                if not data:
                    raise EOFError
                buf += data

        try:
            while True:
                need(2)
                fin, opcode, n = buf[0] & 0x80, buf[0] & 0x0F, buf[1] & 0x7F
                off = 2
                if n == 126:
                    need(4)
                    n, off = int.from_bytes(buf[2:4], "big"), 4
                elif n == 127:
                    need(10)
                    n, off = int.from_bytes(buf[2:10], "big"), 10
                need(off + n)
                payload, buf = buf[off:off + n], buf[off + n:]
                if opcode == 0x9:
                    self._send_frame(0xA, payload, sock)
                    continue
                if opcode == 0x8:
                    break
                if opcode in (0x1, 0x2):
                    message, msg_opcode = payload, opcode
                elif opcode == 0x0:
                    message += payload
                else:
                    continue
                if fin and msg_opcode == 0x1 and not recorded:
                    with self.cv:
                        self.other_frames += 1
                elif fin and msg_opcode == 0x1 and socket_name:
                    text = message.decode()
                    with self.cv:
                        ws = self.named[socket_name]
                        ws["frames"].append(text)
                        ws["events"].append(json.loads(text))
                        self.timeline.append({"t": self.now(), "kind": "ws", "socket": socket_name, "data": text})
                        self.cv.notify_all()
                elif fin and msg_opcode == 0x1:
                    text = message.decode()
                    with self.cv:
                        self.frames.append(text)
                        self.events.append(json.loads(text))
                        self.timeline.append({"t": self.now(), "kind": "ws", "data": text})
                        self.cv.notify_all()
        except (EOFError, OSError):
            pass

    # --- REST ------------------------------------------------------------------------------
    def http(self, method, path, label, auth=True, body=None):
        """One REST call on its own connection; returns (status, parsed JSON body or None).
        `body`: JSON text, sent as application/json."""
        req = "%s %s HTTP/1.1\r\nHost: %s:%d\r\n" % (method, path, HOST, ARI_PORT)
        if auth:
            req += "Authorization: %s\r\n" % AUTH
        if body is not None:
            req += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body.encode())
        elif method in ("POST", "PUT"):
            req += "Content-Length: 0\r\n"
        req += "Connection: close\r\n\r\n" + (body or "")
        t_request = self.now()
        sock = socket.create_connection((HOST, ARI_PORT))
        sock.sendall(req.encode())
        resp = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            resp += data
        sock.close()
        text = resp.decode()
        status = int(text.split(" ", 2)[1])
        entry = {"t": self.now(), "kind": "http", "label": label, "request": req, "response": text,
                 "status": status, "t_request": t_request}
        with self.cv:
            self.http_log.append(entry)
            self.timeline.append(entry)
        body = text.partition("\r\n\r\n")[2]
        print("  %-45s %d %s" % (label, status, body[:150]))
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body

    # --- REST over the event WebSocket (Asterisk 20.14/21.9/22.4+) --------------------------
    def ws_send(self, texts, label):
        """RESTRequest frames (or any text), all in one TCP write, each logged in the timeline
        as {"kind": "ws-sent", "label", "data"} with the text as sent."""
        data = b""
        for text in texts:
            data += self._frame(0x1, text.encode())
            with self.cv:
                self.timeline.append({"t": self.now(), "kind": "ws-sent", "label": label, "data": text})
        self.ws.sendall(data)

    def ws_rest(self, method, uri, label, body=None, request_id=None, wait=True):
        """One REST call as a RESTRequest frame on the recorded WebSocket; waits for the
        RESTResponse with its request_id: (status, parsed body or None)."""
        request_id = request_id or label.replace(" ", "-")
        msg = {"type": "RESTRequest", "request_id": request_id, "method": method, "uri": uri}
        if body is not None:
            msg["content_type"] = "application/json"
            msg["message_body"] = body
        start = len(self.events)
        self.ws_send([json.dumps(msg, separators=(",", ":"))], label)
        if not wait:
            return None, None
        _, resp = self.wait(lambda e: e.get("type") == "RESTResponse" and e.get("request_id") == request_id,
                            start=start, what="RESTResponse " + request_id)
        text = resp.get("message_body")
        print("  %-45s %d %s" % (label, resp["status_code"], (text or "")[:150]))
        return resp["status_code"], json.loads(text) if text else None

    # --- waiting for events ----------------------------------------------------------------
    def wait(self, pred, timeout=10.0, start=0, what="event", socket=None):
        """The first ARI event at or after index `start` for which pred is true: (index, event).
        socket: a named WebSocket's events instead of the recorded one's."""
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                events = self.named[socket]["events"] if socket else self.events
                for i in range(start, len(events)):
                    if pred(events[i]):
                        return i, events[i]
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%s: no %s within %.0f s" % (self.name, what, timeout))
                self.cv.wait(left)

    def wait_type(self, type_, channel=None, start=0, timeout=10.0, socket=None, **fields):
        def pred(e):
            if e.get("type") != type_:
                return False
            if channel is not None and e.get("channel", {}).get("id") != channel:
                return False
            return all(e.get(k) == v for k, v in fields.items())
        return self.wait(pred, timeout, start, "%s %s %s %s" % (type_, channel or "", fields or "", socket or ""),
                         socket)

    def quiet(self, seconds):
        time.sleep(seconds)

    # --- AMI connections -------------------------------------------------------------------
    def ami(self, suffix, events):
        """A recorded AMI connection on this scenario's clock, logged in; its messages are read
        by a thread into a list."""
        name = self.name + suffix
        conn = ami.Conn(name, self.out, HOST, AMI_PORT)
        conn.t0 = self.t0
        while conn.banner is None and not conn.closed:
            conn.poll(1.0)
        if not ami.login(conn, events):
            raise RuntimeError("AMI login failed")
        msgs = []
        th = threading.Thread(target=self._read_ami, args=(conn, msgs), daemon=True)
        th.start()
        self.threads.append(th)
        self.amis.append((conn, msgs))
        return conn, msgs

    def _read_ami(self, conn, msgs):
        while not self.stop and not conn.closed:
            got = conn.poll(0.05)
            if got:
                with self.cv:
                    msgs.extend(got)
                    self.cv.notify_all()

    def wait_ami(self, msgs, timeout=10.0, start=0, **fields):
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for i in range(start, len(msgs)):
                    if all(ami.get(msgs[i], k) == v for k, v in fields.items()):
                        return i, msgs[i]
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%s: no AMI %s within %.0f s" % (self.name, fields, timeout))
                self.cv.wait(left)

    def call_in(self, caller, number, context, exten, cid, timeout_ms=30000):
        """The test caller dials `number` in `context` (callback-access or callback-access-ami);
        once answered its half runs testcallers,<exten>. <cid> is the Originate's ActionID; the
        channels get Asterisk's own ids, as a call from a trunk would."""
        caller.send(ami.action("Originate", ("ActionID", cid), ("Channel", "Local/%s@%s" % (number, context)),
                               ("Context", "testcallers"), ("Exten", exten), ("Priority", "1"),
                               ("Timeout", str(timeout_ms)), ("CallerID", CALLER_ID), ("Async", "true")))

    # --- saving ----------------------------------------------------------------------------
    def close(self):
        if self.ws is not None:
            try:
                self._send_frame(0x8, (1000).to_bytes(2, "big"))
            except OSError:
                pass
            time.sleep(0.2)
            self.ws.close()
        for name, ws in list(self.named.items()):
            if ws["open"]:
                self.close_named_ws(name, "closed at the end (close frame)")
        self.stop = True
        for th in self.threads:
            th.join(2)
        for conn, _ in self.amis:
            if not conn.closed:
                ami.logoff(conn)

    def save(self):
        self.close()
        if self.ws is not None:
            with open(os.path.join(self.out, self.name + ".events.jsonl"), "w") as f:
                f.write("".join(t + "\n" for t in self.frames))
        if self.http_log:
            with open(os.path.join(self.out, self.name + ".http.jsonl"), "w") as f:
                f.write("".join(json.dumps(e) + "\n" for e in self.http_log))
        for name, ws in self.named.items():
            with open(os.path.join(self.out, "%s.%s.events.jsonl" % (self.name, name)), "w") as f:
                f.write("".join(t + "\n" for t in ws["frames"]))
        if self.ws is not None or self.named:
            with open(os.path.join(self.out, self.name + ".timeline.jsonl"), "w") as f:
                f.write("".join(json.dumps(e) + "\n" for e in sorted(self.timeline, key=lambda e: e["t"])))
        for conn, _ in self.amis:
            conn.save()
        print("%s: %d events%s, %d HTTP exchanges" % (
            self.name, len(self.frames),
            "".join(", %s %d" % (n, len(ws["frames"])) for n, ws in self.named.items()), len(self.http_log)))


def caller_hangup(rec, caller_msgs, cid, inbound_name, timeout=15.0):
    """Waits for the caller half's Hangup (the ;1 of the inbound ;2) and its OriginateResponse."""
    name = inbound_name[:-2] + ";1"
    _, h = rec.wait_ami(caller_msgs, timeout, Event="Hangup", Channel=name)
    print("  caller %s: Hangup Cause %s %s" % (name, ami.get(h, "Cause"), ami.get(h, "Cause-txt")))
    states = [ami.get(m, "ChannelStateDesc") for m in caller_msgs
              if ami.get(m, "Event") == "Newstate" and ami.get(m, "Channel") == name]
    print("  caller %s: Newstate %s" % (name, states))
    _, r = rec.wait_ami(caller_msgs, timeout, Event="OriginateResponse", ActionID=cid)
    print("  caller %s: OriginateResponse %s Reason %s" % (cid, ami.get(r, "Response"), ami.get(r, "Reason")))
    _, c = rec.wait_ami(caller_msgs, timeout, Event="Cdr", Channel=name)
    print("  caller %s: Cdr %s, BillableSeconds %s" % (name, ami.get(c, "Disposition"), ami.get(c, "BillableSeconds")))


def inbound(rec, cid, exten="dtmf", number="5000"):
    """A test caller into callback-access; returns (caller msgs, the inbound channel's id and name)."""
    caller, msgs = rec.ami(".caller", "call,cdr")
    rec.call_in(caller, number, "callback-access", exten, cid)
    _, start = rec.wait_type("StasisStart")
    print("  StasisStart %s state %s args %s caller %s" % (start["channel"]["id"], start["channel"]["state"],
                                                           start["args"], start["channel"]["caller"]))
    return msgs, start["channel"]["id"], start["channel"]["name"]


# --- ARI scenarios ------------------------------------------------------------------------

def ari_inbound_dtmf(rec):
    rec.connect_ws()
    msgs, ch, name = inbound(rec, "caller-dtmf-1")
    rec.http("POST", "/ari/channels/%s/answer" % ch, "answer the inbound call")
    rec.wait_type("ChannelStateChange", ch)
    rec.http("POST", "/ari/channels/%s/play?media=sound:callback-please-wait&lang=en" % ch, "play please-wait (en)")
    rec.wait_type("PlaybackFinished")
    rec.wait_type("ChannelDtmfReceived", ch, digit="#", timeout=15)
    rec.http("DELETE", "/ari/channels/%s?reason=normal" % ch, "hang up (reason=normal)")
    rec.wait_type("StasisEnd", ch)
    caller_hangup(rec, msgs, "caller-dtmf-1", name)
    rec.quiet(1)


def ari_inbound_caller_hangup(rec):
    rec.connect_ws()
    msgs, ch, name = inbound(rec, "caller-bye-1", "bye")
    rec.http("POST", "/ari/channels/%s/answer" % ch, "answer the inbound call")
    rec.http("POST", "/ari/channels/%s/play?media=sound:callback-please-wait&lang=en" % ch, "play please-wait (en)")
    rec.wait_type("StasisEnd", ch)
    caller_hangup(rec, msgs, "caller-bye-1", name)
    rec.quiet(1)
    rec.http("DELETE", "/ari/channels/%s?reason=normal" % ch, "hang up, after StasisEnd")


def reject(rec, cid, how, ring=0.0, subscribe=False):
    rec.connect_ws()
    msgs, ch, name = inbound(rec, cid, "quiet")
    if subscribe:
        rec.http("POST", "/ari/applications/%s/subscription?eventSource=channel:%s" % (APP, ch),
                 "subscribe the app to the inbound channel")
    if ring:
        rec.http("POST", "/ari/channels/%s/ring" % ch, "ring (indicate ringing, not answered)")
        rec.quiet(ring)
    rec.http("DELETE", "/ari/channels/%s?%s" % (ch, how), "reject unanswered (%s)" % how)
    rec.wait_type("ChannelDestroyed" if subscribe else "StasisEnd", ch)
    caller_hangup(rec, msgs, cid, name)
    rec.quiet(1)


def ari_play(rec):
    rec.connect_ws()
    _, a = rec.http("POST", "/ari/channels?endpoint=Local/1001@phones&app=%s&appArgs=leg-a,cb-play-1&callerId=%s"
                    "&timeout=30&channelId=cb-play-1-A1&otherChannelId=cb-play-1-A2" % (APP, q('"Callback" <1002>')),
                    "originate A (answers after 1 s)")
    ch = "cb-play-1-A1"
    rec.wait_type("StasisStart", ch)

    def play(media, lang, label, pid=None, wait=True):
        path = "/ari/channels/%s/play?media=%s&lang=%s" % (ch, ",".join(q(m) for m in media), lang)
        if pid:
            path += "&playbackId=" + pid
        status, body = rec.http("POST", path, label)
        if wait and status in (200, 201):
            rec.wait(lambda e: e.get("type") == "PlaybackFinished" and e["playback"]["id"] == body["id"], 20,
                     what="PlaybackFinished " + body["id"])
        return status, body

    play(["sound:callback-please-wait"], "en", "play a prompt that exists", "cb-play-1-pb1")
    play(["sound:callback-no-such-prompt"], "en", "play a prompt that does not exist", "cb-play-1-pb2")
    play(["sound:callback-please-wait", "sound:callback-time-up"], "en", "two prompts in one play", "cb-play-1-pb3")
    play(["sound:callback-please-wait"], "zh", "play a prompt in zh", "cb-play-1-pb4")
    play(["sound:callback-no-such-prompt", "sound:callback-time-up"], "en", "missing prompt, then one that exists",
         "cb-play-1-pb5")
    play(["number:20"], "en", "say number 20 (en)", "cb-play-1-pb6")
    play(["digits:20"], "en", "say digits 20 (en)", "cb-play-1-pb7")
    play(["number:20"], "zh", "say number 20 (zh)", "cb-play-1-pb8")
    play(["sound:vm-youhave", "number:20", "sound:queue-seconds"], "en", "you have 20 seconds (en)", "cb-play-1-pb9")
    # two plays at once: the second is queued behind the first
    play(["sound:callback-please-wait"], "en", "play, then another at once (1)", "cb-play-1-pb10", wait=False)
    play(["sound:callback-time-up"], "en", "play, then another at once (2)", "cb-play-1-pb11", wait=False)
    rec.wait(lambda e: e.get("type") == "PlaybackFinished" and e["playback"]["id"] == "cb-play-1-pb11", 20)
    # stopped mid-play
    play(["sound:callback-please-wait"], "en", "play, to be stopped", "cb-play-1-pb12", wait=False)
    rec.wait(lambda e: e.get("type") == "PlaybackStarted" and e["playback"]["id"] == "cb-play-1-pb12")
    rec.quiet(0.5)
    rec.http("DELETE", "/ari/playbacks/cb-play-1-pb12", "stop the playback mid-play")
    rec.wait(lambda e: e.get("type") == "PlaybackFinished" and e["playback"]["id"] == "cb-play-1-pb12")
    rec.http("DELETE", "/ari/playbacks/cb-play-1-pb12", "stop it again (gone)")
    rec.http("GET", "/ari/playbacks/cb-play-1-pb1", "get a finished playback")
    # a playback still running when the channel goes away
    play(["sound:callback-please-wait"], "en", "play, channel hung up mid-play", "cb-play-1-pb13", wait=False)
    rec.wait(lambda e: e.get("type") == "PlaybackStarted" and e["playback"]["id"] == "cb-play-1-pb13")
    rec.quiet(0.5)
    rec.http("DELETE", "/ari/channels/%s?reason_code=16" % ch, "hang up A mid-play")
    rec.wait_type("ChannelDestroyed", ch)
    play(["sound:callback-please-wait"], "en", "play on a gone channel", "cb-play-1-pb14", wait=False)
    rec.quiet(1)


def ari_errors(rec):
    rec.connect_ws()
    # a channel that is not in Stasis: originated into the dialplan (testcallers,quiet)
    rec.http("POST", "/ari/channels?endpoint=Local/1001@phones&context=testcallers&extension=quiet&priority=1"
             "&channelId=cb-err-dp-1&otherChannelId=cb-err-dp-2&callerId=%s" % q('"Callback" <1002>'),
             "originate into the dialplan, not Stasis")
    rec.quiet(2)  # 1001 answers after 1 s
    _, br = rec.http("POST", "/ari/bridges?type=mixing&bridgeId=cb-err-bridge", "create bridge")
    rec.http("POST", "/ari/bridges/cb-err-bridge/addChannel?channel=cb-err-dp-1", "addChannel, not in Stasis")
    rec.http("POST", "/ari/channels/cb-err-dp-1/answer", "answer, not in Stasis")
    rec.http("POST", "/ari/channels/cb-err-dp-1/play?media=sound:callback-please-wait", "play, not in Stasis")
    rec.http("DELETE", "/ari/channels/cb-err-dp-1?reason_code=16", "hang up a channel not in Stasis")
    rec.http("POST", "/ari/bridges/cb-err-bridge/addChannel?channel=no-such-channel", "addChannel, no such channel")
    rec.http("POST", "/ari/bridges/no-such-bridge/addChannel?channel=cb-err-dp-1", "addChannel, no such bridge")
    # a channel in Stasis
    rec.http("POST", "/ari/channels?endpoint=Local/1001@phones&app=%s&appArgs=leg-a,cb-err-1&channelId=cb-err-1-A1"
             "&otherChannelId=cb-err-1-A2" % APP, "originate A into the app")
    rec.wait_type("StasisStart", "cb-err-1-A1")
    rec.http("POST", "/ari/channels?endpoint=Local/1001@phones&app=%s&channelId=cb-err-1-A1" % APP,
             "originate with a channelId in use")
    rec.http("POST", "/ari/bridges/cb-err-bridge/addChannel?channel=cb-err-1-A1", "addChannel")
    rec.http("POST", "/ari/bridges?type=mixing&bridgeId=cb-err-bridge-2", "create a second bridge")
    rec.http("POST", "/ari/bridges/cb-err-bridge-2/addChannel?channel=cb-err-1-A1", "addChannel, already in a bridge")
    rec.http("DELETE", "/ari/bridges/cb-err-bridge-2", "destroy the second bridge")
    rec.http("DELETE", "/ari/channels/cb-err-1-A1?reason_code=16", "hang up A")
    rec.wait_type("ChannelDestroyed", "cb-err-1-A1")
    rec.http("DELETE", "/ari/channels/cb-err-1-A1?reason_code=16", "hang up A again (gone)")
    rec.http("POST", "/ari/channels/cb-err-1-A1/answer", "answer a gone channel")
    rec.http("POST", "/ari/channels/cb-err-1-A1/ring", "ring a gone channel")
    rec.http("DELETE", "/ari/bridges/cb-err-bridge", "destroy bridge")
    rec.http("DELETE", "/ari/bridges/cb-err-bridge", "destroy bridge again (gone)")
    # bad endpoints
    rec.http("POST", "/ari/channels?endpoint=Nope/123&app=%s" % APP, "originate, unknown technology")
    rec.http("POST", "/ari/channels?endpoint=PJSIP/123&app=%s" % APP, "originate, technology not loaded")
    rec.http("POST", "/ari/channels?endpoint=garbage&app=%s" % APP, "originate, endpoint without a slash")
    rec.http("POST", "/ari/channels?app=%s" % APP, "originate, no endpoint")
    rec.http("POST", "/ari/channels?endpoint=Local/1001@phones", "originate, neither app nor extension")
    # an app with no WebSocket connected
    rec.http("POST", "/ari/channels?endpoint=Local/1001@phones&app=nobody-app&channelId=cb-err-2-A1"
             "&otherChannelId=cb-err-2-A2", "originate into an app nobody listens to")
    rec.quiet(2.5)
    rec.http("GET", "/ari/channels/cb-err-2-A1", "that channel, 2.5 s later")
    rec.http("GET", "/ari/channels", "list channels")
    rec.quiet(1)


def ari_app_replaced(rec):
    """A second WebSocket for the same app takes it over (as a second callbackd, or callbackctl
    beside callbackd, would): the first gets ApplicationReplaced, then nothing, even after the
    second has gone."""
    rec.connect_ws()
    rec.http("POST", "/ari/channels?endpoint=Local/1001@phones&app=%s&appArgs=leg-a,cb-repl-1&callerId=%s&timeout=30"
             "&channelId=cb-repl-1-a&otherChannelId=cb-repl-1-a2" % (APP, q('"Callback" <1002>')),
             "originate A into the app")
    rec.wait_type("StasisStart", "cb-repl-1-a")
    # the phone's half settles in Wait(3600): no more events until something happens
    rec.wait(lambda e: e.get("type") == "ChannelDialplan" and e["channel"]["id"] == "cb-repl-1-a2"
             and e.get("dialplan_app_data") == "3600", what="A;2 in Wait(3600)")
    other = rec.connect_ws(label="a second WebSocket for the same app")
    rec.wait_type("ApplicationReplaced")
    rec.http("GET", "/ari/applications/%s" % APP, "the app, with the second WebSocket")
    rec.http("POST", "/ari/channels/cb-repl-1-a/play?media=sound:callback-please-wait&playbackId=cb-repl-1-pb1",
             "play to A (its events go to the second WebSocket)")
    rec.quiet(1)
    rec.close_other_ws(other, "the second WebSocket closes")
    rec.quiet(1)
    rec.http("GET", "/ari/applications/%s" % APP, "the app, the second WebSocket gone")
    rec.http("DELETE", "/ari/channels/cb-repl-1-a?reason_code=16", "hang up A (the first WebSocket hears nothing)")
    rec.quiet(2)
    rec.http("GET", "/ari/channels/cb-repl-1-a", "A, 2 s later")
    rec.http("GET", "/ari/applications/%s" % APP, "the app, A gone")


def ari_play_bridge_destroyed(rec):
    """A and B bridged; the bridge DELETE and a play on A sent at once (as when the call ends
    and A is told why while the bridge goes): the play answers 201, but Asterisk may never
    start it, and then no PlaybackFinished comes (up to 5 tries, stopping at the first lost one)."""
    rec.connect_ws()
    for n in range(1, 6):
        a, b, pb = "cb-pbd-%d-a" % n, "cb-pbd-%d-b" % n, "cb-pbd-%d-p1" % n
        rec.http("POST", "/ari/channels?endpoint=Local/9%03d@phones&app=%s&appArgs=leg-a,cb-pbd-%d&channelId=%s"
                 "&otherChannelId=%s2" % (n, APP, n, a, a), "originate A (%d)" % n)
        rec.wait_type("StasisStart", a)
        rec.http("POST", "/ari/channels?endpoint=Local/9%03d@phones&app=%s&appArgs=leg-b,cb-pbd-%d&channelId=%s"
                 "&otherChannelId=%s2" % (500 + n, APP, n, b, b), "originate B (%d)" % n)
        rec.wait_type("StasisStart", b)
        _, bridge = rec.http("POST", "/ari/bridges?type=mixing&name=cb-pbd-%d" % n, "create the bridge (%d)" % n)
        rec.http("POST", "/ari/bridges/%s/addChannel?channel=%s,%s" % (bridge["id"], a, b), "add A and B (%d)" % n)
        rec.quiet(0.5)
        th = threading.Thread(target=rec.http, args=("DELETE", "/ari/bridges/%s" % bridge["id"],
                                                     "destroy the bridge, at once with the play (%d)" % n))
        th.start()
        rec.http("POST", "/ari/channels/%s/play?media=sound:callback-time-up&lang=en&playbackId=%s" % (a, pb),
                 "play to A, at once with the bridge's DELETE (%d)" % n)
        th.join()
        try:
            rec.wait(lambda e: e.get("type") == "PlaybackFinished" and e["playback"]["id"] == pb, 5,
                     what="PlaybackFinished " + pb)
            lost = False
        except TimeoutError:
            lost = True
        rec.http("GET", "/ari/playbacks/%s" % pb, "the playback (%d)" % n)
        rec.http("DELETE", "/ari/channels/%s?reason_code=16" % b, "hang up B (%d)" % n)
        rec.http("DELETE", "/ari/channels/%s?reason_code=16" % a, "hang up A (%d)" % n)
        rec.wait_type("ChannelDestroyed", a)
        if lost:
            print("  playback %s lost: no PlaybackStarted, no PlaybackFinished" % pb)
            break
    rec.quiet(1)


# The event types callback.engine.ari reads (ari_engine.cpp, kEventsRead).
ENGINE_EVENTS = ["StasisStart", "StasisEnd", "ChannelStateChange", "Dial", "ChannelHangupRequest",
                 "ChannelDestroyed", "ChannelLeftBridge", "ChannelDtmfReceived", "PlaybackFinished",
                 "ApplicationReplaced"]


ENGINE_EVENTS_WS = [t for t in ENGINE_EVENTS if t != "ChannelLeftBridge"] + ["RESTResponse"]


def whole_callback(rec, rest, cid, create_bridge):
    """A callback as the engine makes it: A 9001 answers at once; "please wait"; B 2001 answers
    after 1 s and hangs up 5 s later; bridged; "partner hung up" to A; A and the bridge deleted.
    rest(method, uri relative to /ari/, label) -> (status, body); create_bridge: the bridge
    request's path up to its query."""
    rest("POST", "channels?endpoint=Local/9001@phones&app=%s&appArgs=leg-a,%s&callerId=%s&timeout=30"
         "&channelId=%s-a&otherChannelId=%s-a2" % (APP, cid, q('"Callback" <2001>'), cid, cid), "originate A")
    rec.wait_type("StasisStart", cid + "-a")
    rest("POST", "channels/%s-a/play?media=sound:callback-please-wait&lang=en&playbackId=%s-p1" % (cid, cid),
         "play please wait to A")
    rec.wait(lambda e: e.get("type") == "PlaybackFinished" and e["playback"]["id"] == cid + "-p1",
             what="PlaybackFinished %s-p1" % cid)
    rest("POST", "channels?endpoint=Local/2001@phones&app=%s&appArgs=leg-b,%s&callerId=%s&timeout=30"
         "&channelId=%s-b&otherChannelId=%s-b2" % (APP, cid, q('"Callback" <9001>'), cid, cid), "originate B")
    rec.wait_type("StasisStart", cid + "-b")
    _, bridge = rest("POST", "%stype=mixing&name=%s" % (create_bridge, cid), "create the bridge")
    rest("POST", "bridges/%s/addChannel?channel=%s-a,%s-b" % (bridge["id"], cid, cid), "add A and B")
    rec.wait_type("ChannelDestroyed", cid + "-b", timeout=15)
    rest("POST", "channels/%s-a/play?media=sound:callback-partner-hangup&lang=en&playbackId=%s-p2" % (cid, cid),
         "play partner hung up to A")
    rec.wait(lambda e: e.get("type") == "PlaybackFinished" and e["playback"]["id"] == cid + "-p2",
             what="PlaybackFinished %s-p2" % cid)
    rest("DELETE", "channels/%s-a?reason_code=16" % cid, "hang up A")
    rest("DELETE", "bridges/%s" % bridge["id"], "delete the bridge")
    rec.wait_type("ChannelDestroyed", cid + "-a")


def ari_event_filter(rec):
    """PUT /applications/{app}/eventFilter with the types the engine reads, then a whole
    callback (A 9001 answers at once; "please wait"; B 2001 answers after 1 s and hangs up 5 s
    later; bridged; "partner hung up" to A; A and the bridge deleted): only those types come.
    Then a malformed filter (400), and {} resets it."""
    rec.connect_ws()
    allowed = json.dumps({"allowed": [{"type": t} for t in ENGINE_EVENTS]}, separators=(",", ":"))
    rec.http("PUT", "/ari/applications/%s/eventFilter" % APP, "set the engine's event filter", body=allowed)
    rec.http("GET", "/ari/applications/%s" % APP, "the app, with its filter")
    whole_callback(rec, lambda method, uri, label: rec.http(method, "/ari/" + uri, label), "cb-flt-1", "bridges?")
    rec.http("PUT", "/ari/applications/%s/eventFilter" % APP, "a filter that is not one",
             body='{"allowed":[{"name":"StasisStart"}]}')
    rec.http("PUT", "/ari/applications/%s/eventFilter" % APP, "reset the filter", body="{}")
    rec.quiet(1)


def ari_rest_websocket(rec):
    """REST over the event WebSocket: a ping, the engine's event filter (with RESTResponse),
    then the whole callback of ari-event-filter as RESTRequest frames; then three requests in
    one TCP write; error replies (404, a bad type, no method, a body without content_type, not
    JSON); and a filter without RESTResponse, under which a request gets no reply."""
    rec.connect_ws()
    rec.ws_rest("GET", "asterisk/ping", "ping", request_id="callback-probe")
    allowed = json.dumps({"allowed": [{"type": t} for t in ENGINE_EVENTS_WS]}, separators=(",", ":"))
    rec.ws_rest("PUT", "applications/%s/eventFilter" % APP, "set the engine's event filter", body=allowed)
    whole_callback(rec, rec.ws_rest, "cb-rws-1", "bridges/cb-rws-1?")
    # Three in one write: each answered, in order.
    start = len(rec.events)
    rec.ws_send([json.dumps({"type": "RESTRequest", "request_id": "many-%d" % i, "method": "GET",
                             "uri": "asterisk/ping"}, separators=(",", ":")) for i in range(1, 4)], "three pings")
    for i in range(1, 4):
        rec.wait(lambda e, i=i: e.get("type") == "RESTResponse" and e.get("request_id") == "many-%d" % i,
                 start=start, what="many-%d" % i)
    rec.ws_rest("DELETE", "channels/cb-rws-none", "hang up a channel that is not there")
    rec.ws_rest("GET", "channels/cb-rws-none/variable?variable=X", "a variable of no channel")
    start = len(rec.events)
    rec.ws_send(['{"type":"Nope","request_id":"bad-type","method":"GET","uri":"asterisk/ping"}'], "a bad type")
    rec.ws_send(['{"type":"RESTRequest","request_id":"no-method","uri":"asterisk/ping"}'], "no method")
    rec.ws_send(['{"type":"RESTRequest","request_id":"no-ctype","method":"PUT","uri":"applications/%s/eventFilter",'
                 '"message_body":"{}"}' % APP], "a body without content_type")
    rec.ws_send(['{not json'], "not JSON")
    rec.ws_send(['{"type":"RESTRequest","request_id":"no-uri","method":"GET"}'], "no uri")
    rec.ws_send(['{"type":"RESTRequest","request_id":"after","method":"GET","uri":"asterisk/ping"}'], "a ping after")
    rec.wait(lambda e: e.get("type") == "RESTResponse" and e.get("request_id") == "after", start=start,
             what="the ping after the bad ones")
    # The filter without RESTResponse: the reply to a request is filtered out like an event.
    allowed = json.dumps({"allowed": [{"type": t} for t in ENGINE_EVENTS]}, separators=(",", ":"))
    rec.ws_rest("PUT", "applications/%s/eventFilter" % APP, "a filter without RESTResponse", body=allowed,
                wait=False)
    rec.quiet(1)
    rec.ws_rest("GET", "asterisk/ping", "a ping under that filter", request_id="filtered", wait=False)
    rec.quiet(1)
    rec.http("PUT", "/ari/applications/%s/eventFilter" % APP, "reset the filter (HTTP)", body="{}")
    rec.quiet(1)


def ari_rest_websocket_replaced(rec):
    """REST over a WebSocket whose app another WebSocket took (ApplicationReplaced): is a
    RESTRequest sent on the old one still answered there? (callback.engine.ari keeps such a
    WebSocket open for the replies still due on it.)"""
    rec.connect_ws()
    rec.ws_rest("GET", "asterisk/ping", "ping", request_id="callback-probe")
    other = rec.connect_ws(label="a second WebSocket for the app")
    rec.wait_type("ApplicationReplaced")
    rec.ws_rest("GET", "asterisk/ping", "a ping on the replaced WebSocket", request_id="after-replaced")
    rec.ws_rest("DELETE", "channels/cb-rws-none", "a 404 on the replaced WebSocket", request_id="after-replaced-404")
    rec.close_other_ws(other, "the second WebSocket")
    rec.quiet(1)


def originate_b_with_record(rec, cid, number, timeout=30, forget=""):
    """A B leg as the ARI engine places it: the hangup handler of [callback-ari-leg-end] pushed
    and CB_FORGET set, in the body's variables."""
    variables = {"CHANNEL(hangup_handler_push)": "callback-ari-leg-end,s,1(%s)" % cid, "CB_FORGET": forget}
    body = json.dumps({"variables": variables}, separators=(",", ":"))
    rec.http("POST", "/ari/channels?endpoint=Local/%s@phones&app=%s&appArgs=leg-b,%s&callerId=%s&timeout=%d"
             "&channelId=%s-b&otherChannelId=%s-b2" % (number, APP, cid, q('"Callback" <9001>'), timeout, cid, cid),
             "originate B %s (%s) with the hangup handler, CB_FORGET=%s" % (number, cid, forget), body=body)


def read_record(rec, cid):
    rec.http("GET", "/ari/asterisk/variable?variable=CB_END_%s" % cid, "the record of %s" % cid)


def ari_leg_end_record(rec):
    """The record B legs leave in a global when they hang up ([callback-ari-leg-end]), read
    back with GET /ari/asterisk/variable, and forgotten through a later B's CB_FORGET.
    B=2001 answers after 1 s and hangs up 5 s later, bridged with A=9001 as in a callback; B=1002 answers and is hung up by us 1 s
    later (CB_FORGET=cb-rec-1); B=4003 never answers (timeout 3 s, CB_FORGET=cb-rec-2 and
    one never written). Also: DB() read through a channel (refused), and a global never set."""
    rec.connect_ws()
    allowed = json.dumps({"allowed": [{"type": t} for t in ENGINE_EVENTS]}, separators=(",", ":"))
    rec.http("PUT", "/ari/applications/%s/eventFilter" % APP, "set the engine's event filter", body=allowed)
    rec.http("POST", "/ari/channels?endpoint=Local/9001@phones&app=%s&appArgs=leg-a,cb-rec-1&channelId=cb-rec-1-a"
             "&otherChannelId=cb-rec-1-a2" % APP, "originate A 9001")
    rec.wait_type("StasisStart", "cb-rec-1-a")
    originate_b_with_record(rec, "cb-rec-1", "2001")
    rec.wait_type("StasisStart", "cb-rec-1-b")
    _, bridge = rec.http("POST", "/ari/bridges?type=mixing&name=cb-rec-1", "create the bridge")
    rec.http("POST", "/ari/bridges/%s/addChannel?channel=cb-rec-1-a,cb-rec-1-b" % bridge["id"], "add A and B")
    rec.wait_type("ChannelDestroyed", "cb-rec-1-b", timeout=15)
    rec.http("DELETE", "/ari/bridges/%s" % bridge["id"], "delete the bridge")
    rec.http("DELETE", "/ari/channels/cb-rec-1-a?reason_code=16", "hang up A")
    rec.wait_type("ChannelDestroyed", "cb-rec-1-a")
    read_record(rec, "cb-rec-1")
    read_record(rec, "cb-never-written")
    originate_b_with_record(rec, "cb-rec-2", "1002", forget="cb-rec-1")
    rec.wait_type("StasisStart", "cb-rec-2-b")
    rec.http("GET", "/ari/channels/cb-rec-2-b/variable?variable=%s" % q("DB(callback/cb-rec-1-b)"),
             "DB() read through a channel")
    rec.quiet(1)
    rec.http("DELETE", "/ari/channels/cb-rec-2-b?reason_code=16", "hang up B 1002")
    rec.wait_type("ChannelDestroyed", "cb-rec-2-b", timeout=15)
    read_record(rec, "cb-rec-1")
    read_record(rec, "cb-rec-2")
    originate_b_with_record(rec, "cb-rec-3", "4003", timeout=3, forget="cb-rec-2,cb-rec-none")
    rec.wait_type("ChannelDestroyed", "cb-rec-3-b", timeout=15)
    read_record(rec, "cb-rec-2")
    read_record(rec, "cb-rec-3")
    rec.quiet(1)


def ari_no_app(rec):
    """HTTP only, no WebSocket: the app callback-app is not registered."""
    rec.http("GET", "/ari/applications", "list applications (no ws connected)")
    rec.http("GET", "/ari/applications/callback-app", "app state (no ws connected)")
    rec.http("POST", "/ari/channels?endpoint=Local/1001@phones&app=callback-app&appArgs=leg-a,cb-noapp-1"
             "&channelId=cb-noapp-1-A1&otherChannelId=cb-noapp-1-A2",
             "originate into callback-app, no ws connected")
    rec.quiet(2.5)
    rec.http("GET", "/ari/channels/cb-noapp-1-A1", "that channel, 2.5 s later")
    rec.http("GET", "/ari/channels", "list channels")


def ari_inbound_no_app(rec):
    """No WebSocket: a call to the access number finds no Stasis application."""
    caller, msgs = rec.ami(".caller", "call,cdr")
    rec.call_in(caller, "5000", "callback-access", "quiet", "caller-noapp-1")
    _, n = rec.wait_ami(msgs, Event="Newchannel", Exten="5000")
    caller_hangup(rec, msgs, "caller-noapp-1", ami.get(n, "Channel")[:-2] + ";2")
    rec.quiet(1)


# --- ARI take-over: one node's Stasis app dies, another moves its calls into its own app -------

APP_N1, APP_N2 = "callback-app-n1", "callback-app-n2"


def cli(command):
    """An Asterisk CLI command (not recorded): its output, printed, for the checks at the end."""
    import subprocess
    prefix = os.environ.get("AST_PREFIX", "/tmp/ast")
    out = subprocess.run([os.path.join(prefix, "sbin", "asterisk"), "-C",
                          os.path.join(prefix, "etc", "asterisk", "asterisk.conf"), "-rx", command],
                         capture_output=True, text=True).stdout
    print("  CLI %s:\n    %s" % (command, "\n    ".join(out.rstrip().splitlines())))
    return out


def dialed(rec, channel, status, socket):
    """Waits for the Dial event of `channel` (under "peer") with that dialstatus."""
    return rec.wait(lambda e: e.get("type") == "Dial" and e["peer"]["id"] == channel and e.get("dialstatus") == status,
                    what="Dial %s %s" % (channel, status), socket=socket)


def ari_takeover_move(rec, bridge_subscriptions=1):
    """Node 1 (WebSocket n1, app callback-app-n1) bridges A=9001 (answers at once) and B=7001
    (answers at once, keys 2001# 1 s later, stays up) as the engine does; then dies: its
    WebSocket drops with no close frame. Node 2 (WebSocket n2, app callback-app-n2) looks at
    what is left, moves A and B into its app (`move?app=callback-app-n2&appArgs=takeover`) and
    subscribes to the ;2 halves and the bridge. B's keys, sent after that, cross the bridge to
    A (ChannelDtmfReceived on cb-t-b and cb-t-a2): A and B still talk. Then B's phone hangs up
    (DELETE cb-t-b2), node 2 deletes the bridge and hangs up A."""
    rec.connect_ws(APP_N1, "node 1's WebSocket", socket_name="n1")
    rec.http("POST", "/ari/channels?endpoint=Local/9001@phones&app=%s&appArgs=leg-a,cb-t&callerId=%s&timeout=30"
             "&channelId=cb-t-a&otherChannelId=cb-t-a2" % (APP_N1, q('"Callback" <7001>')), "n1: originate A 9001")
    rec.wait_type("StasisStart", "cb-t-a", socket="n1")
    rec.http("POST", "/ari/channels?endpoint=Local/7001@phones&app=%s&appArgs=leg-b,cb-t&callerId=%s&timeout=30"
             "&channelId=cb-t-b&otherChannelId=cb-t-b2" % (APP_N1, q('"Callback" <9001>')), "n1: originate B 7001")
    rec.wait_type("StasisStart", "cb-t-b", socket="n1")
    _, bridge = rec.http("POST", "/ari/bridges?type=mixing&name=cb-t", "n1: create the bridge")
    bid = bridge["id"]
    rec.http("POST", "/ari/bridges/%s/addChannel?channel=cb-t-a,cb-t-b" % bid, "n1: add A and B")
    rec.wait_type("ChannelEnteredBridge", "cb-t-a", socket="n1")
    rec.wait_type("ChannelEnteredBridge", "cb-t-b", socket="n1")
    rec.close_named_ws("n1", "node 1 dies (kill -9: no close frame)", abrupt=True)
    rec.connect_ws(APP_N2, "node 2's WebSocket", socket_name="n2")
    rec.http("GET", "/ari/applications/%s" % APP_N1, "n2: the dead node's app")
    rec.http("GET", "/ari/channels", "n2: list channels")
    rec.http("GET", "/ari/bridges", "n2: list bridges")
    rec.http("POST", "/ari/channels/cb-t-a/move?app=%s&appArgs=takeover" % APP_N2, "n2: move A into callback-app-n2")
    rec.http("POST", "/ari/channels/cb-t-b/move?app=%s&appArgs=takeover" % APP_N2, "n2: move B into callback-app-n2")
    sources = "channel:cb-t-a2,channel:cb-t-b2" + ",bridge:%s" % bid * bridge_subscriptions
    rec.http("POST", "/ari/applications/%s/subscription?eventSource=%s" % (APP_N2, q(sources)),
             "n2: subscribe to A;2, B;2 and the bridge")
    # A;1 as well, B;1 not: a channel moved in is subscribed only while in Stasis (no
    # ChannelDestroyed for B;1 after its StasisEnd), one subscribed to stays so.
    rec.http("POST", "/ari/applications/%s/subscription?eventSource=%s" % (APP_N2, q("channel:cb-t-a")),
             "n2: subscribe to A;1 as well (B;1 not)")
    rec.wait_type("StasisStart", "cb-t-a", socket="n2")
    rec.wait_type("StasisStart", "cb-t-b", socket="n2")
    rec.http("GET", "/ari/bridges/%s" % bid, "n2: the bridge after the moves")
    rec.http("GET", "/ari/applications/%s" % APP_N2, "n2: its app after the moves")
    rec.http("GET", "/ari/applications/%s" % APP_N1, "n2: the dead node's app after the moves")
    # B's phone keys 2001# 1 s after its answer: through the bridge to A's phone (A;2).
    rec.wait_type("ChannelDtmfReceived", "cb-t-a2", socket="n2", timeout=10, digit="#")
    rec.quiet(0.5)
    rec.http("DELETE", "/ari/channels/cb-t-b2?reason_code=16", "n2: B's phone hangs up (DELETE B;2)")
    rec.wait_type("StasisEnd", "cb-t-b", socket="n2")
    rec.wait_type("ChannelDestroyed", "cb-t-b2", socket="n2")
    rec.quiet(1)  # B;1's ChannelDestroyed goes to the dead app only
    rec.http("GET", "/ari/bridges/%s" % bid, "n2: the bridge, B gone")
    rec.http("DELETE", "/ari/bridges/%s" % bid, "n2: delete the bridge")
    rec.http("DELETE", "/ari/channels/cb-t-a?reason_code=16", "n2: hang up A")
    rec.wait_type("ChannelDestroyed", "cb-t-a", socket="n2")
    rec.wait_type("ChannelDestroyed", "cb-t-a2", socket="n2")
    rec.quiet(1)
    rec.http("GET", "/ari/channels", "n2: channels at the end")
    rec.http("GET", "/ari/bridges", "n2: bridges at the end")
    rec.http("GET", "/ari/applications", "n2: applications at the end")
    cli("core show channels")
    cli("bridge show all")


def ari_takeover_ringing(rec):
    """Node 1 (n1) originates A=4001 and A=4002 (both ring until told) and dies while they ring.
    Node 2 (n2) tries to move them (not in Stasis yet) and subscribes to the first. The first
    is then answered (an AMI Redirect of its ;2 half to phones 9001, recorded as
    <name>.ami.*): Stasis(callback-app-n1) finds no WebSocket for that app. Then a third
    WebSocket, opened by node 2 for the dead node's app (n1b), before the second is answered
    (Redirect to 9002): its StasisStart comes there, and from there it can be moved."""
    conn, msgs = rec.ami(".ami", "off")
    rec.connect_ws(APP_N1, "node 1's WebSocket", socket_name="n1")
    for n in (1, 2):
        rec.http("POST", "/ari/channels?endpoint=Local/400%d@phones&app=%s&appArgs=leg-a,cb-r-%d&callerId=%s"
                 "&timeout=60&channelId=cb-r-%d-a&otherChannelId=cb-r-%d-a2"
                 % (n, APP_N1, n, q('"Callback" <1001>'), n, n), "n1: originate A 400%d (rings until told)" % n)
    for n in (1, 2):
        dialed(rec, "cb-r-%d-a" % n, "RINGING", "n1")
    rec.close_named_ws("n1", "node 1 dies (kill -9: no close frame)", abrupt=True)
    rec.connect_ws(APP_N2, "node 2's WebSocket", socket_name="n2")
    rec.http("GET", "/ari/applications/%s" % APP_N1, "n2: the dead node's app")
    rec.http("GET", "/ari/channels", "n2: list channels")
    rec.http("POST", "/ari/channels/cb-r-1-a/move?app=%s&appArgs=takeover" % APP_N2, "n2: move ringing A 4001")
    rec.http("POST", "/ari/channels/cb-r-2-a/move?app=%s&appArgs=takeover" % APP_N2, "n2: move ringing A 4002")
    rec.http("POST", "/ari/applications/%s/subscription?eventSource=%s" % (APP_N2, q("channel:cb-r-1-a,channel:cb-r-1-a2")),
             "n2: subscribe to both halves of A 4001")
    rec.quiet(0.5)
    conn.send(ami.action("Redirect", ("ActionID", "redirect-1"), ("Channel", "cb-r-1-a2"), ("Context", "phones"),
                         ("Exten", "9001"), ("Priority", "1")))
    rec.wait_ami(msgs, ActionID="redirect-1")
    rec.wait_type("ChannelDestroyed", "cb-r-1-a", socket="n2", timeout=10)
    rec.wait_type("ChannelDestroyed", "cb-r-1-a2", socket="n2", timeout=10)
    rec.http("POST", "/ari/channels/cb-r-1-a/move?app=%s&appArgs=takeover" % APP_N2, "n2: move A 4001, gone")
    rec.quiet(0.5)
    rec.connect_ws(APP_N1, "node 2 opens the dead node's app", socket_name="n1b")
    rec.http("GET", "/ari/applications/%s" % APP_N1, "n1b: the dead node's app, its WebSocket back")
    conn.send(ami.action("Redirect", ("ActionID", "redirect-2"), ("Channel", "cb-r-2-a2"), ("Context", "phones"),
                         ("Exten", "9002"), ("Priority", "1")))
    rec.wait_ami(msgs, ActionID="redirect-2")
    rec.wait_type("StasisStart", "cb-r-2-a", socket="n1b")
    rec.http("POST", "/ari/channels/cb-r-2-a/move?app=%s&appArgs=takeover" % APP_N2, "n1b: move A 4002, answered")
    rec.wait_type("StasisStart", "cb-r-2-a", socket="n2")
    rec.http("POST", "/ari/applications/%s/subscription?eventSource=%s" % (APP_N2, q("channel:cb-r-2-a2")),
             "n2: subscribe to A 4002's ;2")
    rec.quiet(0.5)
    rec.http("DELETE", "/ari/channels/cb-r-2-a?reason_code=16", "n2: hang up A 4002")
    rec.wait_type("StasisEnd", "cb-r-2-a", socket="n2")
    rec.wait_type("ChannelDestroyed", "cb-r-2-a2", socket="n2")  # A;1's goes to n1b (its originator's app)
    rec.quiet(1)
    rec.close_named_ws("n1b", "node 2 closes the dead node's app (close frame)")
    rec.quiet(0.5)
    rec.http("GET", "/ari/channels", "n2: channels at the end")
    rec.http("GET", "/ari/applications", "n2: applications at the end")
    cli("core show channels")
    cli("bridge show all")


# --- AMI scenarios: the inbound call in Async AGI --------------------------------------------

AMI_EVENTS = "call,user,cdr,agi,dtmf"


def agi(conn, channel, command, aid):
    conn.send(ami.action("AGI", ("ActionID", aid), ("Channel", channel), ("Command", command),
                         ("CommandID", aid)))


def ami_inbound(rec, cid, exten):
    conn, msgs = rec.ami("", AMI_EVENTS)
    caller, cmsgs = rec.ami(".caller", "call,cdr")
    rec.call_in(caller, "5000", "callback-access-ami", exten, cid)
    _, start = rec.wait_ami(msgs, Event="AsyncAGIStart")
    channel = ami.get(start, "Channel")
    print("  AsyncAGIStart %s Env %s" % (channel, urllib.parse.unquote(ami.get(start, "Env"))[:300]))
    return conn, msgs, cmsgs, channel


def agi_step(rec, conn, msgs, channel, command, aid, timeout=10.0):
    n = len(msgs)
    agi(conn, channel, command, aid)
    _, r = rec.wait_ami(msgs, timeout, start=n, Event="AsyncAGIExec", CommandID=aid)
    result = urllib.parse.unquote(ami.get(r, "Result") or "")
    print("  %-40s -> %s" % (command, result.strip()))
    return result


def agi_hangup(rec, conn, msgs, cmsgs, ch, cid, cause):
    """The AMI Hangup action with a cause on the channel in Async AGI; waits for the caller's
    end and AsyncAGIEnd, then 2 s for the late Cdr events."""
    conn.send(ami.action("Hangup", ("ActionID", "hangup-1"), ("Channel", ch), ("Cause", cause)))
    caller_hangup(rec, cmsgs, cid, ch)
    rec.wait_ami(msgs, Event="AsyncAGIEnd", Channel=ch)
    rec.quiet(2)


def ami_inbound_asyncagi(rec):
    conn, msgs, cmsgs, ch = ami_inbound(rec, "caller-agi-1", "dtmf")
    agi_step(rec, conn, msgs, ch, "ANSWER", "agi-1")
    agi_step(rec, conn, msgs, ch, 'STREAM FILE callback-please-wait "0123456789#*"', "agi-2")
    digits, i = "", 3
    while not digits.endswith("#") and i < 20:
        result = agi_step(rec, conn, msgs, ch, "WAIT FOR DIGIT 3000", "agi-%d" % i)
        i += 1
        code = int(result.split("result=")[1].split()[0]) if "result=" in result else -1
        if code <= 0:
            break
        digits += chr(code)
    print("  digits after the first: %r" % digits)
    agi_hangup(rec, conn, msgs, cmsgs, ch, "caller-agi-1", "16")


def ami_inbound_getdata(rec, cid="caller-agi-2", caller="dtmf"):
    conn, msgs, cmsgs, ch = ami_inbound(rec, cid, caller)
    agi_step(rec, conn, msgs, ch, "ANSWER", "agi-1")
    agi_step(rec, conn, msgs, ch, "GET DATA callback-please-wait 3000 10", "agi-2", timeout=20)
    agi_hangup(rec, conn, msgs, cmsgs, ch, cid, "16")


def ami_inbound_missing_prompt(rec):
    """STREAM FILE of a sound Asterisk does not have: on 23.4.1 the command fails
    (RESULT_FAILURE), which ends the Async AGI; the dialplan goes on to its Hangup()."""
    conn, msgs, cmsgs, ch = ami_inbound(rec, "caller-agi-5", "quiet")
    agi_step(rec, conn, msgs, ch, "ANSWER", "agi-1")
    agi_step(rec, conn, msgs, ch, 'STREAM FILE callback-no-such-prompt "0123456789*#"', "agi-2")
    rec.wait_ami(msgs, Event="AsyncAGIEnd", Channel=ch)
    caller_hangup(rec, cmsgs, "caller-agi-5", ch)
    rec.quiet(2)


def ami_inbound_reject(rec):
    conn, msgs, cmsgs, ch = ami_inbound(rec, "caller-agi-3", "quiet")
    agi_hangup(rec, conn, msgs, cmsgs, ch, "caller-agi-3", "17")


def ari_outbound_dtmf(rec):
    """The IVR's caller: A originated into the app (as the engine places A) answers and keys
    digits (testcallers.conf's [phones] 7XXX: Answer, Wait(1), SendDTMF(2XXX#,250)); the
    keys come as ChannelDtmfReceived on the originated channel in Stasis, the ;1 half."""
    rec.connect_ws()
    cid = "ivr-a-1"
    rec.http("POST", "/ari/channels?endpoint=Local/7005@phones&app=%s&appArgs=leg-a,%s&callerId=%s&timeout=30"
             "&channelId=%s-A1&otherChannelId=%s-A2" % (APP, cid, q('"Callback" <000>'), cid, cid),
             "originate A 7005 (keys 2005#) into the app")
    rec.wait_type("StasisStart", "%s-A1" % cid)
    rec.wait_type("ChannelDtmfReceived", "%s-A1" % cid, digit="#", timeout=15)
    rec.http("DELETE", "/ari/channels/%s-A1?reason=normal" % cid, "hang up A (reason=normal)")
    rec.wait_type("ChannelDestroyed", "%s-A1" % cid)
    rec.quiet(1)


def ami_outbound_ivr(rec):
    """callback.engine.ami's IVR: A (7005: answers, keys 2005#) originated as the engine does
    into [callback-ivr-ami], where it waits in Async AGI; GET DATA collects B; SET VARIABLE
    CB_B and CB_DIAL; ASYNCAGI BREAK; the dialplan goes on into [callback] 2005 (answers
    after 1 s, hangs up 5 s later): please wait, Dial, the UserEvent, partner hung up."""
    conn, msgs = rec.ami("", AMI_EVENTS)
    cid = "cb-ivr-1"
    conn.send(ami.action("Originate", ("ActionID", cid), ("Channel", "Local/7005@phones"),
                         ("Context", "callback-ivr-ami"), ("Exten", "s"), ("Priority", "1"),
                         ("Timeout", "30000"), ("CallerID", '"Callback" <000>'),
                         ("ChannelId", cid + "-A1"), ("OtherChannelId", cid + "-A2"), ("Account", "ivr"),
                         ("Variable", "CB_ID=" + cid), ("Variable", "CB_A=7005"),
                         ("Variable", "CB_LIMIT=20000"), ("Variable", "CB_WARN=5000"),
                         ("Variable", "CB_WARN_REPEAT=5000"), ("Variable", "CB_DIAL_TIMEOUT=10"),
                         ("Variable", "CB_B_CALLERID=7005"), ("Variable", "CHANNEL(language)=en"),
                         ("Async", "true")))
    _, start = rec.wait_ami(msgs, timeout=15, Event="AsyncAGIStart")
    ch = ami.get(start, "Channel")
    print("  AsyncAGIStart %s Env %s" % (ch, urllib.parse.unquote(ami.get(start, "Env"))[:300]))
    agi_step(rec, conn, msgs, ch, "GET DATA callback-enter-number 5000 20", "agi-1", timeout=20)
    agi_step(rec, conn, msgs, ch, 'SET VARIABLE CB_DIAL "Local/2005@phones"', "agi-2")
    agi_step(rec, conn, msgs, ch, "SET VARIABLE CB_B 2005", "agi-3")
    n = len(msgs)
    agi(conn, ch, "ASYNCAGI BREAK", "agi-4")
    rec.wait_ami(msgs, start=n, Event="AsyncAGIEnd", Channel=ch)
    rec.wait_ami(msgs, timeout=30, Event="UserEvent", UserEvent="CallbackResult")
    rec.wait_ami(msgs, timeout=15, Event="Hangup", Channel=ch)
    rec.quiet(2)


def ami_outbound_ivr_hangup(rec):
    """The AMI IVR's A hung up while it waits in Async AGI: A (1006: answers, keys nothing)
    originated into [callback-ivr-ami]; the prompt; then the engine's Hangup action on A;1
    (a cancel, or no number after the tries): the AGI ends and [callback-ivr-ami]'s h
    extension reports the result."""
    conn, msgs = rec.ami("", AMI_EVENTS)
    cid = "cb-ivrh-1"
    conn.send(ami.action("Originate", ("ActionID", cid), ("Channel", "Local/1006@phones"),
                         ("Context", "callback-ivr-ami"), ("Exten", "s"), ("Priority", "1"),
                         ("Timeout", "30000"), ("CallerID", '"Callback" <000>'),
                         ("ChannelId", cid + "-A1"), ("OtherChannelId", cid + "-A2"), ("Account", "ivr"),
                         ("Variable", "CB_ID=" + cid), ("Variable", "CB_A=1006"),
                         ("Variable", "CB_DIAL_TIMEOUT=10"), ("Variable", "CB_B_CALLERID=1006"),
                         ("Variable", "CHANNEL(language)=en"), ("Async", "true")))
    _, start = rec.wait_ami(msgs, timeout=15, Event="AsyncAGIStart")
    ch = ami.get(start, "Channel")
    agi_step(rec, conn, msgs, ch, 'STREAM FILE callback-enter-number "0123456789*#"', "agi-1", timeout=20)
    n = len(msgs)
    conn.send(ami.action("Hangup", ("ActionID", "hangup-1"), ("Channel", ch), ("Cause", "16")))
    rec.wait_ami(msgs, start=n, timeout=15, Event="UserEvent", UserEvent="CallbackResult")
    rec.wait_ami(msgs, start=n, timeout=15, Event="Hangup", Channel=ch[:-1] + "2")
    rec.quiet(2)


SCENARIOS = {
    "ami-outbound-ivr": ami_outbound_ivr,
    "ami-outbound-ivr-hangup": ami_outbound_ivr_hangup,
    "ari-outbound-dtmf": ari_outbound_dtmf,
    "ari-inbound-dtmf": ari_inbound_dtmf,
    "ari-inbound-caller-hangup": ari_inbound_caller_hangup,
    "ari-inbound-reject": lambda rec: reject(rec, "caller-rej-1", "reason=busy"),
    "ari-inbound-reject-congestion": lambda rec: reject(rec, "caller-rej-2", "reason=congestion"),
    "ari-inbound-ring-reject": lambda rec: reject(rec, "caller-rej-3", "reason_code=17", ring=3.0),
    "ari-inbound-reject-subscribed": lambda rec: reject(rec, "caller-rej-4", "reason=busy", subscribe=True),
    "ari-play": ari_play,
    "ari-errors": ari_errors,
    "ari-no-app": ari_no_app,
    "ari-app-replaced": ari_app_replaced,
    "ari-play-bridge-destroyed": ari_play_bridge_destroyed,
    "ari-event-filter": ari_event_filter,
    "ari-rest-websocket": ari_rest_websocket,
    "ari-rest-websocket-replaced": ari_rest_websocket_replaced,
    "ari-leg-end-record": ari_leg_end_record,
    "ari-inbound-no-app": ari_inbound_no_app,
    "ari-takeover-move": ari_takeover_move,
    "ari-takeover-ringing": ari_takeover_ringing,
    "ami-inbound-asyncagi": ami_inbound_asyncagi,
    "ami-inbound-getdata": ami_inbound_getdata,
    "ami-inbound-getdata-timeout": lambda rec: ami_inbound_getdata(rec, "caller-agi-4", "quiet"),
    "ami-inbound-reject": ami_inbound_reject,
    "ami-inbound-missing-prompt": ami_inbound_missing_prompt,
}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                                                 "asterisk"))
    args = p.parse_args()
    rec = Recording(args.scenario, args.out)
    try:
        SCENARIOS[args.scenario](rec)
    finally:
        rec.save()


if __name__ == "__main__":
    main()
