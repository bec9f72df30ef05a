#!/usr/bin/env python3
"""Soak of issue 10, item 11: callbackd at a steady rate of callbacks against the Asterisk
fake, with status webhooks and SSE listeners, watching its memory and file descriptors.

    benchmarks/soak.py --minutes 60 [--build build-release] [--rate 100] [--out DIR]

What it starts (all on 127.0.0.1, stopped at the end): callback-fake-asterisk with a fast
clock (--time-scale, default 0.1: a 30 s call lasts 3 s), callbackd on a fresh data folder
(an account with a big balance, a rate deck, a campaign, an API key), a webhook receiver
that answers 200 and checks each signature, and SSE listeners that follow the event stream
of every --sse-every'th callback to its end.

The load: --rate POSTs a second to /v1/callbacks on keep-alive connections, every one with a
status_callback, half paid by the account and half by the campaign, half with an
Idempotency-Key (and now and then the same key again, which must answer the same id). The
numbers decide what the fake does: 1XXX answers (the call talks until its limit_seconds, 30),
2XXX answers and hangs up, 3XXX is busy, 4XXX never answers, 5XXX is congested; a few
callers are 4XXX (A never answers) and a few answered calls are canceled (DELETE).

Every --sample-seconds it writes a CSV row (DIR/soak.csv): callbackd's RSS (VmRSS) and open
file descriptors (/proc/PID/fd), its threads, callbacks in flight (/healthz), finished by
state (/metrics), POSTs accepted and refused, webhooks received, SSE events and streams.
At the end it stops the load, waits for in flight to reach 0, for the webhooks and the
streams to end, closes its connections and prints a summary. It exits 1 when:
  - RSS (VmRSS), or its anonymous part (RssAnon: the heap, stacks), at the end of the load
    is 5 % or more above what it was after the warm-up. The warm-up ends at the first sample
    taken both --warmup-minutes into the load (default 5, or half the run when shorter) and
    once --warmup-finished callbacks have finished (default 10,000: how many finished
    callbacks the service and callbackd's registry keep for lookups, the bounded caches
    that are the bulk of what fills; SQLite's page caches, 2 MB a connection, fill within
    the first minute). The summary also gives the raw growth, from the first sample of the
    load and from idle, which counts the filling of those caches;
  - callbackd, once idle again, has more file descriptors open than when it was idle before
    the load;
  - anything is left in flight;
  - a POST failed (other than 202), a webhook or an SSE event is missing, duplicated or out
    of order, a signature is wrong, or callbackd gave a webhook up;
  - callbackd does not exit 0 on SIGTERM.
"""
import argparse
import asyncio
import collections
import csv
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FINAL_STATES = ("completed", "failed", "canceled")
EVENT_OF_STATE = {"dialing_a": "initiated", "dialing_b": "ringing", "bridged": "answered"}
for _s in FINAL_STATES:
    EVENT_OF_STATE[_s] = "completed"

# What each kind of request dials on the fake, and its share of the load (per 100).
KINDS = [
    # name, share, caller prefix, callee prefix
    ("answer", 40, "1", "1"),          # talks until limit_seconds (time_up)
    ("partner_hangup", 15, "1", "2"),  # B answers, hangs up after 5 s (fake time)
    ("busy", 20, "1", "3"),            # B busy
    ("no_answer", 15, "1", "4"),       # B rings until b_ring_timeout
    ("congestion", 5, "1", "5"),       # B congested
    ("caller_away", 5, "4", "1"),      # A never answers
]


# Numbers the billing's default toll-fraud list refuses (deny_prefixes 1900 and 1976: the
# soak's four-digit numbers read as E.164): never dialled, so that every POST gets its 202.
DENIED_NUMBERS = ("1900", "1976")


def log(message):
    print(f"soak: {time.strftime('%H:%M:%S')} {message}", flush=True)


# --- a small HTTP/1.1 client (keep-alive) -------------------------------------------------

class HttpError(Exception):
    pass


async def read_response(reader):
    """Reads one response: (status, headers dict with lower-case names, body bytes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise HttpError(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def request_bytes(method, path, host, headers=None, body=b""):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method, path, headers=None, body=b""):
        for attempt in (1, 2):
            fresh = self.writer is None
            if fresh:
                try:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError as e:
                    raise HttpError(f"{method} {path}: {e!r}") from e
            try:
                self.writer.write(request_bytes(method, path, f"127.0.0.1:{self.port}", headers, body))
                await self.writer.drain()
                status, response_headers, response_body = await read_response(self.reader)
            except (OSError, asyncio.IncompleteReadError) as e:
                self.close()
                # A kept-alive connection the server closed meanwhile: once more on a new one.
                if fresh or attempt == 2:
                    raise HttpError(f"{method} {path}: {e!r}") from e
                continue
            if response_headers.get("connection", "").lower() == "close":
                self.close()
            return status, response_headers, response_body
        raise AssertionError("unreachable")

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def one_request(port, method, path, headers=None, body=b""):
    """A request on a connection of its own, closed afterwards."""
    c = Connection(port)
    try:
        return await c.request(method, path, dict(headers or {}, Connection="close"), body)
    finally:
        c.close()


# --- processes ----------------------------------------------------------------------------

def proc_status(pid):
    """{rss, anon, file (kB), fds, threads} of a process. VmRSS = RssAnon (heap, stacks) +
    RssFile (mapped files: the libraries, and SQLite's memory map of the database, which
    grows with the CDR table up to the store's mmap_size) + RssShmem."""
    out = {"rss": 0, "anon": 0, "file": 0, "threads": 0}
    names = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file", "Threads:": "threads"}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] in names:
                out[names[fields[0]]] = int(fields[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def start_process(args, log_path, pattern, env=None, timeout=30):
    """Starts a program with its output in log_path; waits for a line matching pattern
    (its first group: the port). Returns (Popen, port)."""
    out = open(log_path, "wb")
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    out.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            m = re.search(pattern, f.read().decode(errors="replace"))
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    with open(log_path, errors="replace") as f:
        raise SystemExit(f"soak: {args[0]} did not start:\n{f.read()}")


def stop_process(p, timeout=60):
    """SIGTERM, then its exit status (SIGKILL after timeout: returns None)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None
    return p.returncode


def ctl(bin_dir, config, env, *args):
    r = subprocess.run([os.path.join(bin_dir, "callbackctl"), "--config", config, *args], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"soak: callbackctl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def write_config(path, ami_port, server_threads, extra_server):
    server = {"listen": "127.0.0.1:0", "threads": server_threads, "shutdown_grace_seconds": 30}
    server.update(extra_server)
    config = {
        "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
        "store": {"plugin": "callback.store.sqlite"},
        "billing": {"plugin": "callback.billing.sqlite"},
        "engines": [{"plugin": "callback.engine.ami", "name": "fake-asterisk",
                     "config": {"servers": [f"127.0.0.1:{ami_port}"], "username": "callback",
                                "secret": "callbacksecret", "dial_string": "Local/{number}@phones"}}],
        "service": {"campaigns": {"soak": {"limit_seconds": 30}}},
        "server": server,
        "log": {"level": "warning"},
    }
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


# Webhooks to 127.0.0.1 are refused by callbackd's SSRF policy unless allowed: the option
# that allows them, tried in this order (the first `config check` accepts is used; none
# when this callbackd has no policy).
WEBHOOK_ALLOW_OPTIONS = [{"webhook_allow_networks": ["127.0.0.1/32"]}]


def start_callbackd(bin_dir, data, out, ami_port, server_threads, env):
    """Writes the config and starts callbackd with the first webhook-allow option it takes
    (callbackd refuses an unknown server option at start). Returns (Popen, port, config, extra)."""
    config = os.path.join(data, "callback.json")
    log_path = os.path.join(out, "callbackd.log")
    for extra in WEBHOOK_ALLOW_OPTIONS + [{}]:
        write_config(config, ami_port, server_threads, extra)
        try:
            p, port = start_process([os.path.join(bin_dir, "callbackd"), "--config", config], log_path,
                                    r"callbackd: listening on http://[^ ]*:(\d+)/", env=env)
            return p, port, config, extra
        except SystemExit as e:
            if extra and "unknown option" in str(e):
                continue
            raise
    raise AssertionError("unreachable")


def parse_metrics(text):
    """Prometheus text -> {name{labels}: value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def sum_metric(metrics, name, label=None):
    total = 0
    for key, value in metrics.items():
        if key == name or key.startswith(name + "{"):
            if label is None or label in key:
                total += value
    return int(total)


def expected_states(final):
    """The states a callback went through, from its final object (the chain SSE shows and
    webhooks follow): dialing_a, a_answered when A answered, dialing_b when B was dialled,
    bridged when B answered, then its final state."""
    legs = final.get("legs") or {}
    a, b = legs.get("a") or {}, legs.get("b") or {}
    states = ["dialing_a"]
    if a.get("answered_at"):
        states.append("a_answered")
    if b.get("state", "idle") != "idle":
        states.append("dialing_b")
    if b.get("answered_at"):
        states.append("bridged")
    states.append(final["state"])
    return states


def expected_webhooks(final):
    return [EVENT_OF_STATE[s] for s in expected_states(final) if s in EVENT_OF_STATE]


class Soak:
    def __init__(self, args, api_port, api_key, webhook_secret, process):
        self.args = args
        self.api_port = api_port
        self.key = api_key
        self.secret = webhook_secret.encode() if webhook_secret else None
        self.process = process
        self.pid = process.pid
        self.rng = random.Random(args.seed)
        self.auth = {"Authorization": f"Bearer {api_key}"}
        self.callbacks = {}  # id -> record
        self.counts = collections.Counter()
        self.errors = collections.Counter()
        self.error_examples = []
        self.recent_keys = collections.deque(maxlen=200)
        self.tasks = set()
        self.sse_tasks = set()
        self.sse_open = 0
        self.pool = asyncio.Queue()
        self.hook_port = None
        self.rows = []
        self.load_running = False
        self.early = {}  # webhooks that came before their POST's 202 was read

    def error(self, kind, detail):
        self.errors[kind] += 1
        if len(self.error_examples) < 20:
            self.error_examples.append(f"{kind}: {detail}")

    def spawn(self, coroutine, group=None):
        task = asyncio.ensure_future(coroutine)
        group = self.tasks if group is None else group
        group.add(task)
        task.add_done_callback(group.discard)

    # --- the webhook receiver --------------------------------------------------------------

    def check_signature(self, headers, body):
        """True, False, or None when it carries no signature this driver knows."""
        if self.secret is None:
            return None
        # Callback-Signature: t=<unix>,v1=<hex HMAC of "<t>.<body>">[,v1=...] (any v1 may match);
        # older callbackd: X-Callback-Signature: sha256=<hex HMAC of the body>.
        signature = headers.get("callback-signature") or headers.get("x-callback-signature", "")
        pairs = [p.strip().split("=", 1) for p in signature.split(",") if "=" in p]
        v1 = [value for name, value in pairs if name == "v1"]
        if v1:
            t = dict(pairs).get("t", headers.get("x-callback-timestamp", ""))
            want = hmac.new(self.secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
            return any(hmac.compare_digest(want, given) for given in v1)
        if signature.startswith("sha256="):
            want = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(want, signature[7:])
        return None

    async def on_webhook(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            self.error("webhook_read", repr(e))
            writer.close()
            return
        writer.close()
        self.counts["webhooks"] += 1
        signed = self.check_signature(headers, body)
        if signed is False:
            self.error("webhook_signature", headers.get("callback-signature") or headers.get("x-callback-signature"))
        elif signed is None:
            self.counts["webhooks_unsigned"] += 1
        try:
            callback = json.loads(body)
            event = headers.get("x-callback-event", "")
            record = self.callbacks.get(callback["id"])
        except (ValueError, KeyError, TypeError) as e:
            self.error("webhook_body", repr(e))
            return
        if record is None:
            # The 202 may not have been read yet: keep it for when it is.
            self.early.setdefault(callback["id"], []).append((event, callback))
            return
        self.webhook_for(record, event, callback)

    def webhook_for(self, record, event, callback):
        record["hooks"].append(event)
        if event == "completed":
            record["final"] = callback
            if callback.get("state") not in FINAL_STATES:
                self.error("webhook_state", f"{callback['id']}: completed with state {callback.get('state')}")
            self.counts["finished_" + str(callback.get("outcome"))] += 1

    # --- SSE ---------------------------------------------------------------------------------

    async def follow(self, record):
        self.sse_open += 1
        self.counts["sse_streams"] += 1
        reader = writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.api_port)
            writer.write(request_bytes("GET", f"/v1/callbacks/{record['id']}/events", f"127.0.0.1:{self.api_port}",
                                       dict(self.auth, Accept="text/event-stream")))
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            status = head.split(b" ", 2)[1]
            if status != b"200":
                self.error("sse_status", f"{record['id']}: {head[:200]!r}")
                return
            chunked = b"transfer-encoding: chunked" in head.lower()
            deadline = time.monotonic() + self.args.stream_seconds

            async def read(coroutine):
                return await asyncio.wait_for(coroutine, max(0.1, deadline - time.monotonic()))

            # The stream's bytes, de-chunked: it ends with the last chunk (the connection
            # may stay open for another request) or when the server closes it.
            buffer = b""
            data = []
            while True:
                if chunked:
                    size = int((await read(reader.readuntil(b"\r\n"))).split(b";")[0], 16)
                    if size == 0:
                        break
                    buffer += await read(reader.readexactly(size + 2))
                    buffer = buffer[:-2]
                else:
                    more = await read(reader.read(65536))
                    if not more:
                        break
                    buffer += more
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    line = line.rstrip(b"\r")
                    if line.startswith(b"data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        callback = json.loads(b"\n".join(data))
                        data = []
                        record["sse"].append(callback["state"])
                        self.counts["sse_events"] += 1
            if not record["sse"] or record["sse"][-1] not in FINAL_STATES:
                self.error("sse_unfinished", f"{record['id']}: stream ended after {record['sse']}")
        except asyncio.TimeoutError:
            self.error("sse_timeout", f"{record['id']}: no end after {self.args.stream_seconds} s: {record['sse']}")
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as e:
            self.error("sse_read", f"{record['id']}: {e!r}")
        finally:
            self.sse_open -= 1
            if writer is not None:
                writer.close()

    # --- the load ----------------------------------------------------------------------------

    def pick_kind(self):
        n = self.rng.randrange(100)
        for kind in KINDS:
            if n < kind[1]:
                return kind
            n -= kind[1]
        return KINDS[0]

    async def post(self, i):
        name, _, caller_prefix, callee_prefix = self.pick_kind()
        caller = self.rng.randrange(1000)
        callee = (caller + 1 + self.rng.randrange(999)) % 1000  # never the caller's own number
        while f"{callee_prefix}{callee:03d}" in DENIED_NUMBERS or callee == caller:
            callee = (callee + 1) % 1000
        body = {"caller": f"{caller_prefix}{caller:03d}", "callee": f"{callee_prefix}{callee:03d}",
                "limit_seconds": 30,
                "status_callback": f"http://127.0.0.1:{self.hook_port}/hook/{i}"}
        if i % 2:
            body["account"] = "soak"
        else:
            body["campaign"] = "soak"
        headers = dict(self.auth)
        headers["Content-Type"] = "application/json"
        replay = None
        if i % 4 < 2:
            if self.recent_keys and self.rng.randrange(200) == 0:
                replay = self.rng.choice(self.recent_keys)
                headers["Idempotency-Key"] = replay[0]
            else:
                headers["Idempotency-Key"] = f"soak-{os.getpid()}-{i}"
        connection = await self.pool.get()
        try:
            status, _, response = await connection.request("POST", "/v1/callbacks", headers,
                                                           json.dumps(body).encode())
        except HttpError as e:
            self.error("post_failed", repr(e))
            return
        finally:
            self.pool.put_nowait(connection)
        if status != 202:
            self.error(f"post_{status}", response[:300].decode(errors="replace"))
            return
        callback_id = json.loads(response)["id"]
        if replay is not None:
            self.counts["idempotent_replays"] += 1
            if callback_id != replay[1]:
                self.error("idempotency", f"key {replay[0]}: {callback_id}, first {replay[1]}")
            return
        if callback_id in self.callbacks:
            self.error("duplicate_id", callback_id)
            return
        self.counts["accepted"] += 1
        self.counts["kind_" + name] += 1
        record = {"id": callback_id, "hooks": [], "sse": [], "final": None}
        self.callbacks[callback_id] = record
        for event, callback in self.early.pop(callback_id, []):
            self.webhook_for(record, event, callback)
        if "Idempotency-Key" in headers:
            self.recent_keys.append((headers["Idempotency-Key"], callback_id))
        if self.args.sse_every and self.counts["accepted"] % self.args.sse_every == 0:
            record["followed"] = True
            self.spawn(self.follow(record), self.sse_tasks)
        if name == "answer" and self.rng.randrange(1000) < self.args.cancel_per_mille:
            await asyncio.sleep(self.rng.uniform(0.2, 2.0))
            await self.cancel(callback_id)

    async def cancel(self, callback_id):
        connection = await self.pool.get()
        try:
            status, _, response = await connection.request("DELETE", f"/v1/callbacks/{callback_id}", self.auth)
        except HttpError as e:
            self.error("delete_failed", repr(e))
            return
        finally:
            self.pool.put_nowait(connection)
        self.counts["cancels"] += 1
        if status not in (202, 409):  # 409: it had ended already
            self.error(f"delete_{status}", response[:300].decode(errors="replace"))

    async def load(self, seconds):
        loop = asyncio.get_running_loop()
        start = loop.time()
        i = 0
        while True:
            due = start + i / self.args.rate
            if due >= start + seconds:
                break
            if self.died():
                log("callbackd is gone: load stopped")
                break
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1:
                self.counts["late_posts"] += 1
            self.spawn(self.post(i))
            i += 1
        self.counts["posts"] = i

    # --- sampling ----------------------------------------------------------------------------

    def died(self):
        """callbackd's exit status once it has exited, else None."""
        return self.process.poll()

    async def health(self):
        status, _, body = await one_request(self.api_port, "GET", "/healthz")
        return status, json.loads(body)

    async def sample(self, phase, t0):
        status = proc_status(self.pid)
        _, health = await self.health()
        _, _, text = await one_request(self.api_port, "GET", "/metrics")
        metrics = parse_metrics(text.decode())
        row = {
            "seconds": round(time.monotonic() - t0),
            "phase": phase,
            "rss_kb": status["rss"],
            "rss_anon_kb": status["anon"],
            "rss_file_kb": status["file"],
            "db_kb": os.path.getsize(self.args.db) // 1024 if os.path.exists(self.args.db) else 0,
            "fds": status["fds"],
            "threads": status["threads"],
            "in_flight": health.get("in_flight"),
            "posts": self.counts["accepted"] + sum(self.errors[k] for k in self.errors if k.startswith("post_")),
            "accepted": self.counts["accepted"],
            "started": sum_metric(metrics, "callback_started_total"),
            "completed": sum_metric(metrics, "callback_finished_total", 'state="completed"'),
            "failed": sum_metric(metrics, "callback_finished_total", 'state="failed"'),
            "canceled": sum_metric(metrics, "callback_finished_total", 'state="canceled"'),
            "webhooks_received": self.counts["webhooks"],
            "webhooks_delivered": sum_metric(metrics, "callbackd_webhooks_total", 'result="delivered"'),
            "webhooks_given_up": sum_metric(metrics, "callbackd_webhooks_total", 'result="given_up"'),
            "webhooks_refused": sum_metric(metrics, "callbackd_webhooks_total", 'result="refused"'),
            "sse_streams_open": self.sse_open,
            "sse_events": self.counts["sse_events"],
            "errors": sum(self.errors.values()),
        }
        self.rows.append(row)
        with open(self.args.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if f.tell() == 0:
                w.writeheader()
            w.writerow(row)
        return row

    async def sampler(self, t0):
        n = 1
        while self.load_running:
            await asyncio.sleep(max(0.0, t0 + n * self.args.sample_seconds - time.monotonic()))
            if not self.load_running or self.died() is not None:
                break
            try:
                row = await self.sample("load", t0)
            except (HttpError, OSError, ValueError) as e:
                log(f"no sample: {e!r}")
                continue
            log(f"{row['seconds']:5d} s  rss {row['rss_kb']} kB (anon {row['rss_anon_kb']})  fds {row['fds']}  in flight {row['in_flight']}  "
                f"accepted {row['accepted']}  webhooks {row['webhooks_received']}  sse {row['sse_events']} "
                f"(open {row['sse_streams_open']})  errors {row['errors']}")
            n += 1

    async def wait_for(self, what, predicate, seconds):
        deadline = time.monotonic() + seconds
        while True:
            if await predicate():
                return True
            if time.monotonic() > deadline:
                log(f"gave up waiting for {what} after {seconds} s")
                return False
            await asyncio.sleep(0.5)

    async def idle_fds(self):
        """callbackd's fd count when nothing is going on (the smallest of a few looks)."""
        looks = []
        for _ in range(5):
            looks.append(proc_status(self.pid)["fds"])
            await asyncio.sleep(0.2)
        return min(looks)

    async def run(self):
        server = await asyncio.start_server(self.on_webhook, "127.0.0.1", 0, backlog=1024)
        self.hook_port = server.sockets[0].getsockname()[1]
        for _ in range(self.args.connections):
            self.pool.put_nowait(Connection(self.api_port))
        ok = await self.wait_for("the engine to log in", self.engine_ready, 60)
        if not ok:
            raise SystemExit("soak: callbackd's engine did not log in to the fake")
        fds_before = await self.idle_fds()
        rss_before = proc_status(self.pid)["rss"]
        log(f"callbackd idle: rss {rss_before} kB, fds {fds_before}; webhooks to 127.0.0.1:{self.hook_port}; "
            f"load {self.args.rate}/s for {self.args.minutes} min")
        t0 = time.monotonic()
        self.load_running = True
        sampler = asyncio.ensure_future(self.sampler(t0))
        await self.load(self.args.minutes * 60)
        self.load_running = False
        await sampler
        if self.died() is not None:
            await asyncio.sleep(1)
            for task in set(self.tasks) | set(self.sse_tasks):
                task.cancel()
            server.close()
            return [f"callbackd died under load (exit status {self.died()}) after "
                    f"{time.monotonic() - t0:.0f} s, {self.counts['accepted']} callbacks; see its log"]
        last_load = await self.sample("load_end", t0)
        log("load stopped; draining")
        drain_started = time.monotonic()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=60)

        async def drained():
            return (await self.health())[1].get("in_flight") == 0
        await self.wait_for("in flight to reach 0", drained, self.args.drain_seconds)
        drain_seconds = time.monotonic() - drain_started

        async def hooks_done():
            unfinished = sum(1 for r in self.callbacks.values() if r["final"] is None)
            return unfinished == 0
        await self.wait_for("the last webhooks", hooks_done, 90)
        if self.sse_tasks:
            await asyncio.wait(set(self.sse_tasks), timeout=self.args.stream_seconds)
        while not self.pool.empty():
            self.pool.get_nowait().close()
        server.close()
        await server.wait_closed()

        async def fds_back():
            return proc_status(self.pid)["fds"] <= fds_before
        await self.wait_for("callbackd's fds to come back", fds_back, 15)
        fds_after = await self.idle_fds()
        end = await self.sample("drained", t0)
        return self.report(fds_before, fds_after, rss_before, last_load, end, drain_seconds)

    async def engine_ready(self):
        try:
            status, health = await self.health()
        except (HttpError, OSError, ValueError):
            return False
        return status == 200 and health.get("engines", {}).get("connected", 0) >= 1

    # --- the summary -------------------------------------------------------------------------

    def report(self, fds_before, fds_after, rss_before, last_load, end, drain_seconds):
        failures = []
        warmup = self.args.warmup_minutes * 60
        load_rows = [r for r in self.rows if r["phase"] in ("load", "load_end")]
        after_warmup = [r for r in load_rows if r["seconds"] >= warmup and
                        r["completed"] + r["failed"] + r["canceled"] >= self.args.warmup_finished] or load_rows[-1:]
        warm = after_warmup[0]
        first = load_rows[0]

        def percent(new, old):
            return (new - old) * 100.0 / max(1, old)
        growth = percent(last_load["rss_kb"], warm["rss_kb"])
        anon_growth = percent(last_load["rss_anon_kb"], warm["rss_anon_kb"])
        # Single samples swing with the calls, streams and webhooks of the moment: the
        # medians of the first and last minutes after the warm-up show the trend.
        def median_rss(rows, key):
            values = sorted(r[key] for r in rows)
            return values[len(values) // 2]
        warm_minute = [r for r in after_warmup if r["seconds"] < warm["seconds"] + 60]
        last_minute = [r for r in after_warmup if r["seconds"] > last_load["seconds"] - 60]
        fds_load = [r["fds"] for r in load_rows]
        peak_rss = max(r["rss_kb"] for r in self.rows)

        # Webhooks and SSE against what each callback went through.
        hooks_expected = hooks_missing = hooks_extra = 0
        sse_expected = sse_bad = 0
        unfinished = 0
        for record in self.callbacks.values():
            final = record["final"]
            if final is None:
                unfinished += 1
                continue
            want = expected_webhooks(final)
            hooks_expected += len(want)
            got = record["hooks"]
            if got != want:
                missing = collections.Counter(want) - collections.Counter(got)
                extra = collections.Counter(got) - collections.Counter(want)
                hooks_missing += sum(missing.values())
                hooks_extra += sum(extra.values())
                if not missing and not extra:
                    self.error("webhook_order", f"{record['id']}: {got}, expected {want}")
                else:
                    self.error("webhook_set", f"{record['id']}: {got}, expected {want}")
            if record.get("followed"):
                chain = expected_states(final)
                seen = record["sse"]
                # The first frame is the state when the stream opened; from there, every state.
                want_sse = chain[chain.index(seen[0]):] if seen and seen[0] in chain else chain
                sse_expected += len(want_sse)
                if seen != want_sse:
                    sse_bad += 1
                    self.error("sse_events", f"{record['id']}: {seen}, expected {want_sse}")

        print()
        print("== soak summary")
        print(f"   load: {self.args.rate}/s for {self.args.minutes} min, fake time scale {self.args.time_scale}, "
              f"{self.counts['posts']} POSTs ({self.counts['late_posts']} more than 1 s late)")
        print(f"   callbacks accepted: {self.counts['accepted']}; finished (callbackd): completed {end['completed']}, "
              f"failed {end['failed']}, canceled {end['canceled']}; idempotent replays {self.counts['idempotent_replays']}, "
              f"cancels sent {self.counts['cancels']}")
        outcomes = ", ".join(f"{k[9:]} {v}" for k, v in sorted(self.counts.items()) if k.startswith("finished_"))
        print(f"   outcomes (from the webhooks): {outcomes}")
        finished_at_warm = warm["completed"] + warm["failed"] + warm["canceled"]
        print(f"   RSS raw: idle {rss_before} kB; first sample ({first['seconds']} s) {first['rss_kb']} kB; end of load "
              f"({last_load['seconds']} s) {last_load['rss_kb']} kB: {percent(last_load['rss_kb'], first['rss_kb']):+.2f} % "
              f"on the first sample, {percent(last_load['rss_kb'], rss_before):+.2f} % on idle; peak {peak_rss} kB; "
              f"after drain {end['rss_kb']} kB")
        print(f"   RSS after warm-up ({warm['seconds']} s, {finished_at_warm} finished) {warm['rss_kb']} kB; end of load "
              f"{last_load['rss_kb']} kB: {growth:+.2f} %; median of the first minute after warm-up "
              f"{median_rss(warm_minute, 'rss_kb')} kB, of the last minute {median_rss(last_minute, 'rss_kb')} kB: "
              f"{percent(median_rss(last_minute, 'rss_kb'), median_rss(warm_minute, 'rss_kb')):+.2f} %")
        print(f"   of which anonymous (heap): first sample {first['rss_anon_kb']} kB, after warm-up {warm['rss_anon_kb']} kB, "
              f"end of load {last_load['rss_anon_kb']} kB: {anon_growth:+.2f} % after warm-up; mapped files "
              f"{warm['rss_file_kb']} -> {last_load['rss_file_kb']} kB (the database: {warm['db_kb']} -> "
              f"{last_load['db_kb']} kB)")
        print(f"   fds: idle before {fds_before}, under load min {min(fds_load)} max {max(fds_load)}, idle after {fds_after}")
        print(f"   in flight at end of load {last_load['in_flight']}, after {drain_seconds:.1f} s {end['in_flight']}")
        print(f"   webhooks: received {self.counts['webhooks']}, expected {hooks_expected} (missing {hooks_missing}, "
              f"extra {hooks_extra}); callbackd delivered {end['webhooks_delivered']}, gave up {end['webhooks_given_up']}, "
              f"refused {end['webhooks_refused']}; "
              f"unsigned {self.counts['webhooks_unsigned']}")
        print(f"   SSE: {self.counts['sse_streams']} streams, {self.counts['sse_events']} events, expected {sse_expected} "
              f"({sse_bad} streams differ)")
        print(f"   errors: {dict(self.errors) or 'none'}")
        for example in self.error_examples:
            print(f"     {example}")

        if growth >= 5.0:
            failures.append(f"RSS grew {growth:.2f} % after the warm-up")
        if anon_growth >= 5.0:
            failures.append(f"anonymous RSS grew {anon_growth:.2f} % after the warm-up")
        if fds_after > fds_before:
            failures.append(f"fds idle after {fds_after} > idle before {fds_before}")
        if end["in_flight"] != 0:
            failures.append(f"{end['in_flight']} callbacks left in flight")
        if unfinished:
            failures.append(f"{unfinished} callbacks without a completed webhook")
        if hooks_missing or hooks_extra or self.counts["webhooks"] != hooks_expected:
            failures.append(f"webhooks: {self.counts['webhooks']} received, {hooks_expected} expected")
        if end["webhooks_refused"]:
            failures.append(f"callbackd refused {end['webhooks_refused']} webhooks (its address policy)")
        if end["webhooks_given_up"]:
            failures.append(f"callbackd gave {end['webhooks_given_up']} webhooks up")
        if end["webhooks_delivered"] != self.counts["webhooks"]:
            failures.append(f"callbackd says {end['webhooks_delivered']} delivered, {self.counts['webhooks']} received")
        if sse_bad or self.counts["sse_events"] != sse_expected:
            failures.append(f"SSE: {self.counts['sse_events']} events, {sse_expected} expected")
        if self.errors:
            failures.append(f"{sum(self.errors.values())} errors")
        return failures


def table(rows, minutes):
    """Markdown rows of the samples every `minutes` (and the last ones): the README's table."""
    out = ["| time | phase | RSS (kB) | anon (kB) | fds | threads | in flight | accepted | webhooks received | SSE events |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    picked, next_at = [], 0.0
    for row in rows:
        if row["phase"] != "load" or float(row["seconds"]) >= next_at:
            picked.append(row)
            if row["phase"] == "load":
                next_at = (float(row["seconds"]) // (minutes * 60) + 1) * minutes * 60
    for row in picked:
        seconds = int(float(row["seconds"]))
        out.append(f"| {seconds // 60}:{seconds % 60:02d} | {row['phase']} | {row['rss_kb']} | "
                   f"{row.get('rss_anon_kb', '')} | {row['fds']} | "
                   f"{row['threads']} | {row['in_flight']} | {row['accepted']} | {row['webhooks_received']} | "
                   f"{row['sse_events']} |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60, help="how long the load runs (default 60)")
    parser.add_argument("--rate", type=float, default=100, help="callbacks POSTed a second (default 100)")
    parser.add_argument("--build", default="build-release", help="build folder (default build-release)")
    parser.add_argument("--out", help="folder for soak.csv and the logs (default: a new one in /tmp, kept)")
    parser.add_argument("--time-scale", type=float, default=0.1, help="the fake's clock (default 0.1)")
    parser.add_argument("--warmup-minutes", type=float, help="RSS is compared with the first sample after this "
                                                             "(default 5, or half the run when shorter)")
    parser.add_argument("--warmup-finished", type=int, default=10_000,
                        help="the warm-up also lasts until this many callbacks have finished (default 10,000: the kept ones)")
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--sse-every", type=int, default=10, help="follow the events of every Nth callback (0: none)")
    parser.add_argument("--cancel-per-mille", type=int, default=20, help="answered calls canceled, per 1000")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections for the POSTs")
    parser.add_argument("--server-threads", type=int, default=2)
    parser.add_argument("--drain-seconds", type=float, default=120)
    parser.add_argument("--stream-seconds", type=float, default=50, help="longest an SSE stream may take")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--callbackd-env", metavar="NAME=VALUE", action="append", default=[],
                        help="set in callbackd's environment only (e.g. LD_PRELOAD of a heap profiler)")
    parser.add_argument("--table", metavar="CSV", help="print the samples of an earlier run's CSV as a table "
                                                       "(every --table-minutes) and exit")
    parser.add_argument("--table-minutes", type=float, default=10)
    args = parser.parse_args()
    if args.table:
        with open(args.table, newline="") as f:
            print(table(list(csv.DictReader(f)), args.table_minutes))
        return 0
    if args.warmup_minutes is None:
        args.warmup_minutes = min(5.0, args.minutes / 2)

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bin_dir = os.path.join(root, args.build, "bin")
    for program in ("callbackd", "callbackctl", "callback-fake-asterisk"):
        if not os.access(os.path.join(bin_dir, program), os.X_OK):
            raise SystemExit(f"soak: {bin_dir}/{program} is missing; build it first (scripts/build.sh --release)")
    out = args.out or tempfile.mkdtemp(prefix="soak.")
    os.makedirs(out, exist_ok=True)
    args.csv = os.path.join(out, "soak.csv")
    args.db = os.path.join(out, "data", "callback.db")
    if os.path.exists(args.csv):
        os.remove(args.csv)
    data = os.path.join(out, "data")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    env = dict(os.environ, CALLBACK_DATA_DIR=data)
    log(f"output in {out}; build {args.build}")

    fake, ami_port = start_process([os.path.join(bin_dir, "callback-fake-asterisk"), "--port", "0",
                                    "--time-scale", str(args.time_scale)],
                                   os.path.join(out, "fake-asterisk.log"), r"listening on 127\.0\.0\.1:(\d+)")
    callbackd = None
    status = 1
    try:
        config = os.path.join(data, "callback.json")
        write_config(config, ami_port, args.server_threads, {})
        deck = os.path.join(data, "deck.csv")
        with open(deck, "w") as f:
            f.write("prefix;description;rate;increment\n")
            for digit in "123456":
                f.write(f"{digit};soak phones {digit}XXX;0.10;60/60\n")
        ctl(bin_dir, config, env, "rates", "import", "default", deck)
        ctl(bin_dir, config, env, "accounts", "add", "soak", "--balance", "100000000.00")
        ctl(bin_dir, config, env, "campaigns", "add", "soak", "--limit", "30")
        created = json.loads(ctl(bin_dir, config, env, "--json", "keys", "add", "soak"))
        secret = created.get("webhook_secret")
        callbackd_env = dict(env, **dict(v.split("=", 1) for v in args.callbackd_env))
        callbackd, api_port, config, extra = start_callbackd(bin_dir, data, out, ami_port, args.server_threads,
                                                             callbackd_env)
        log(f"config {config}; server options added for webhooks to 127.0.0.1: {extra or 'none needed'}")
        soak = Soak(args, api_port, created["key"], secret, callbackd)
        failures = asyncio.run(soak.run())
        code = stop_process(callbackd)
        callbackd = None
        if code != 0:
            failures.append(f"callbackd exited with {code} on SIGTERM")
        print(f"   callbackd exit status on SIGTERM: {code}")
        print(f"   CSV: {args.csv}; logs: {out}/callbackd.log, {out}/fake-asterisk.log")
        if failures:
            print("FAIL: " + "; ".join(failures))
        else:
            print("PASS")
        status = 1 if failures else 0
    finally:
        if callbackd is not None:
            stop_process(callbackd)
        stop_process(fake)
    return status


if __name__ == "__main__":
    sys.exit(main())
