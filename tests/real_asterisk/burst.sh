#!/usr/bin/env bash
# A burst of callbacks through callbackd (REST, SQLite billing) on a REAL Asterisk, as a new
# user would run it: N callbacks POSTed at once, A = 9000.. (answers at once), B = 2000..
# (answers after 1 s, hangs up 5 s later), each billed to its own prepaid account at
# 0.60/min per second. Every callback must end `completed`, B talked 5 s (Asterisk's Cdr), cost 0.05.
# Prints one line per callback and a summary; exits 1 if any was misreported.
# --cancel: each callback is canceled (DELETE) at a random moment 0-4 s after it was
# accepted, all at once: each must end canceled, or completed when it ended first; either
# way its account is charged exactly its cost (B's talk until then) and nothing stays
# reserved. Every run must leave Asterisk with no channel.
#
#   AST_PREFIX=/tmp/ast ../shared/asterisk/peer.sh start .      # the real Asterisk
#   tests/real_asterisk/burst.sh [--bin build/bin] [--calls 20] [--b-first 2000] [--port 18080] [--cancel N]
#                                [--engine ami|ari] [--via rest|sms|ani|email [--no-b]]
#
# --cancel N: only the first N callbacks are canceled (without N: all). --engine: which
# engine callbackd runs (common.sh; default ami). A run must also leave no bridge on Asterisk.
# --via sms: each callback is asked for by SMS instead, through callback.trigger.sms: a
# Twilio webhook signed as Twilio signs it, from A's number (registered to its account), whose
# text is B; the callback's id is read from the TwiML reply.
# --via ani: each callback is asked for by a missed call, through callback.trigger.ani (ARI
# only: the IVR): caller 7000+i (registered to its account; EXTRA_DIALPLAN must include
# tests/real_asterisk/testcallers.conf) rings the access number 5000 and is rejected busy,
# unanswered; called back, it answers and keys 2<its last three digits>#, so B is 2000+i.
# --via email: each callback is asked for by e-mail, through callback.trigger.email: the
# script starts a throwaway dovecot (Debian's dovecot-imapd) on 127.0.0.1 and a free port,
# configured as tests/support/dovecot.hpp does (one user, a plain password, Maildir), and
# delivers one mail a callback into its INBOX, all at once (Maildir files), from A's
# account's registered address (burst-<i>@burst.example) with the subject
# "5551234#<B>" (the last 7 digits of the access number 1055551234, then # and B); the
# trigger polls every second. The callbacks' ids are read from callbackd's list.
# --via email --no-b (ARI only: the IVR): the subject is "5551234" alone, A is 7000+i (as
# --via ani), and A, called back, keys 2<its last three digits>#, so B is 2000+i.
# --via web: the web page's public POST /v1/public/callbacks (callback.trigger.web in account
# mode: account and PIN, no API key), all at once.
# --via email also checks the reply mails (a throwaway aiosmtpd): one to each account, with
# In-Reply-To its mail and the outcome.
#
# Not run by CI (no Asterisk there); tests/README.md lists the runs made with it.
set -euo pipefail
bin=build/bin calls=20 b_first=2000 port=18080 a_first=9000 cancel=0 engine=ami via=rest no_b=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --b-first) b_first=$2; shift 2 ;;
    --a-first) a_first=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --cancel) cancel=1; if [[ "${2:-}" =~ ^[0-9]+$ ]]; then cancel_count=$2; shift; fi; shift ;;
    --engine) engine=$2; shift 2 ;;
    --via) via=$2; shift 2 ;;
    --no-b) no_b=1; shift ;;
    *) echo "burst.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source "$(cd "$(dirname "$0")" && pwd)/common.sh"
if [ "$via" = ani ]; then
  a_first=7000 b_first=2000
fi
if [ "$no_b" = 1 ]; then
  [ "$via" = email ] || { echo "burst.sh: --no-b is for --via email (the IVR asks A for B)" >&2; exit 2; }
  a_first=7000 b_first=2000
fi
engine_json=$(engine_entry "$engine")
cancel_count=${cancel_count:-$calls}
bin=$(cd "$bin" && pwd)
work=$(mktemp -d) daemon='' dovecot_pid='' smtp_pid='' dove=''
trap 'for p in $daemon $dovecot_pid $smtp_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
      rm -rf "$work" ${dove:+"$dove"}' EXIT
export CALLBACK_DATA_DIR=$work
email_json=''
if [ "$via" = email ]; then
  # A throwaway dovecot, as tests/support/dovecot.hpp makes it: its own folder (readable by
  # the mail processes, which run as the dovecot user when this runs as root), 127.0.0.1 and
  # a free port, one user with a plain password, Maildir.
  [ -x /usr/sbin/dovecot ] || { echo "burst.sh: --via email needs dovecot (apt-get install dovecot-imapd)" >&2; exit 2; }
  dove=$(mktemp -d) && chmod 755 "$dove" && mkdir -p "$dove"/{run,state,mail,home} "$dove"/mail/callback/{new,cur,tmp}
  if [ "$(id -u)" = 0 ]; then mail_user=dovecot; else mail_user=$(id -un); fi
  mail_uid=$(id -u "$mail_user") mail_gid=$(id -g "$mail_user")
  imap_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo 'callback:{PLAIN}mailpass' >"$dove/passwd"
  cat >"$dove/dovecot.conf" <<EOF
base_dir = $dove/run
state_dir = $dove/state
log_path = $dove/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dove/mail/%u
first_valid_uid = 0
mail_uid = $mail_uid
mail_gid = $mail_gid
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dove/passwd
}
userdb {
  driver = static
  args = home=$dove/home/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
EOF
  if [ "$(id -u)" = 0 ]; then chown -R "$mail_uid:$mail_gid" "$dove/mail" "$dove/home"; fi
  /usr/sbin/dovecot -F -c "$dove/dovecot.conf" &
  dovecot_pid=$!
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$imap_port") 2>/dev/null && break
    kill -0 "$dovecot_pid" 2>/dev/null || break
    sleep 0.1
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$imap_port") 2>/dev/null || { echo "dovecot did not listen"; cat "$dove/dovecot.log"; exit 1; }
  # The replies go to a throwaway SMTP server (Debian's aiosmtpd), stored as a Maildir.
  [ -d /usr/lib/python3/dist-packages/aiosmtpd ] || { echo "burst.sh: --via email needs python3-aiosmtpd" >&2; exit 2; }
  smtp_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$dove/replies" &
  smtp_pid=$!
  for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null && break; sleep 0.1; done
  email_json=',
               {"plugin": "callback.trigger.email",
                "config": {"imap_url": "imap://127.0.0.1:'"$imap_port"'/INBOX", "username": "callback", "password": "mailpass",
                           "poll_seconds": 1, "access_numbers": ["1055551234"],
                           "smtp_url": "smtp://127.0.0.1:'"$smtp_port"'", "reply_from": "callback@burst.example"}}'
fi
web_json=''
if [ "$via" = web ]; then
  # The page in account mode (account and PIN), its limits out of the way of a burst.
  web_json=',
               {"plugin": "callback.trigger.web",
                "config": {"mode": "account", "per_number_per_hour": 1000, "per_ip_per_minute": 100000}}'
fi
cat >"$work/callback.json" <<EOF
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
  "store": {"plugin": "callback.store.sqlite"},
  "billing": {"plugin": "callback.billing.sqlite"},
  "engines": [$engine_json],
  "triggers": [{"plugin": "callback.trigger.sms",
                "config": {"twilio_auth_token": "burst-token", "twilio_url": "http://127.0.0.1:$port/hooks/sms/twilio",
                           "per_sender_per_hour": 1000}},
               {"plugin": "callback.trigger.ani",
                "config": {"access_numbers": ["5000"], "ring_seconds": 1, "callback_delay_seconds": 1,
                           "per_caller_per_hour": 1000}}$email_json$web_json],
  "service": {"max_in_flight": 100000},
  "server": {"listen": "127.0.0.1:$port", "shutdown_grace_seconds": 5},
  "log": {"level": "warning"}
}
EOF
ctl() { "$bin/callbackctl" --config "$work/callback.json" "$@"; }
printf 'prefix;description;rate;increment;connection_fee\n2;burst B numbers;0.60;1/1;0\n9;burst A numbers;0.60;1/1;0\n' >"$work/deck.csv"
ctl rates import default "$work/deck.csv" --currency CNY >/dev/null
# One prepaid account per caller (an authorization reserves what the balance pays for).
for i in $(seq 0 $((calls - 1))); do
  ctl accounts add "burst-$i" --currency CNY --balance 3.00 --number $((a_first + i)) \
    $([ "$via" = email ] && echo --email "burst-$i@burst.example") $([ "$via" = web ] && echo --pin 4711) >/dev/null
done
# Callbacks asked by SMS belong to no API key: an admin key reads them.
key=$(ctl keys add burst $([ "$via" != rest ] && echo --scope admin) | grep -o 'cbk_[A-Za-z0-9_-]*' | head -1)
"$bin/callbackd" --config "$work/callback.json" >"$work/callbackd.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"connected":1' && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"connected":1' || { echo "callbackd did not reach Asterisk"; cat "$work/callbackd.log"; exit 1; }

log=${AST_PREFIX:-/tmp/ast}/peer.log
before=$(wc -l <"$log")
# All POSTs at once.
for i in $(seq 0 $((calls - 1))); do
  printf '{"caller":"%d","callee":"%d","account":"burst-%d"}\n' $((a_first + i)) $((b_first + i)) "$i"
done >"$work/bodies"
# The callbacks a trigger asked for, once there are $calls of them (callbackd's list, newest
# first), into $work/ids.
wait_for_ids() {
  for _ in $(seq 300); do
    curl -s "http://127.0.0.1:$port/v1/callbacks?limit=1000" -H "Authorization: Bearer $key" |
      grep -o '"id":"cb-[^"]*"' | cut -d'"' -f4 >"$work/ids" || true
    [ "$(wc -l <"$work/ids")" -ge "$calls" ] && return
    sleep 0.1
  done
}
if [ "$via" = sms ]; then
  # One signed Twilio webhook per callback, all at once: "<signature> <form body>" a line.
  python3 - "http://127.0.0.1:$port/hooks/sms/twilio" "$calls" "$a_first" "$b_first" >"$work/sms" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
url, n, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    f = {"MessageSid": "SMburst%06d" % i, "From": str(a + i), "To": "10690000", "Body": str(b + i)}
    s = base64.b64encode(hmac.new(b"burst-token", (url + "".join(k + f[k] for k in sorted(f))).encode(),
                                  hashlib.sha1).digest()).decode()
    print(s, urllib.parse.urlencode(f))
PY
  xargs -P "$calls" -d '\n' -n 1 sh -c 'curl -s -w "\n" -XPOST "$0" -H "X-Twilio-Signature: ${1%% *}" \
      -H "Content-Type: application/x-www-form-urlencoded" --data "${1#* }"' "http://127.0.0.1:$port/hooks/sms/twilio" \
    <"$work/sms" | tee "$work/responses" | grep -o '(cb-[^)]*)' | tr -d '()' >"$work/ids"
elif [ "$via" = ani ]; then
  # Every caller rings at once; each is rejected busy (its Dial() ends BUSY), then called back.
  ast=${AST_PREFIX:-/tmp/ast} rings=()
  for i in $(seq 0 $((calls - 1))); do
    # (A subshell of its own, without the EXIT trap, which would stop callbackd.)
    ( trap - EXIT; "$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx \
        "channel originate Local/$((a_first + i))@ring-access$([ "$engine" = ami ] && echo -ami) application Wait 30" >/dev/null 2>&1 || true ) &
    rings+=($!)
  done
  wait "${rings[@]}"  # (not callbackd)
  # The callbacks, once the trigger has asked for them all (callbackd's list, newest first).
  wait_for_ids
  cp "$work/ids" "$work/responses"
elif [ "$via" = email ]; then
  # One mail a callback, all delivered at once (Maildir files: written in tmp/, moved to
  # new/), each with its own Message-ID (the callback's idempotency key).
  for i in $(seq 0 $((calls - 1))); do
    name="$i.M$$.burst"
    printf 'From: Burst %d <burst-%d@burst.example>\r\nTo: callback@burst.example\r\nSubject: 5551234%s\r\nMessage-ID: <burst-%d.%d@burst.example>\r\nDate: %s\r\n\r\ncall me\r\n' \
      "$i" "$i" "$([ "$no_b" = 1 ] || echo "#$((b_first + i))")" "$i" "$$" "$(date -R)" >"$dove/mail/callback/tmp/$name"
    if [ "$(id -u)" = 0 ]; then chown "$mail_uid:$mail_gid" "$dove/mail/callback/tmp/$name"; fi
  done
  mv "$dove"/mail/callback/tmp/*.burst "$dove/mail/callback/new/"
  # The callbacks, once the poller has read every mail (callbackd's list, newest first).
  wait_for_ids
  { cp "$work/ids" "$work/responses"; curl -s "http://127.0.0.1:$port/v1/triggers" -H "Authorization: Bearer $key"; echo; } >>"$work/responses"
elif [ "$via" = web ]; then
  # The web page's public POST (no API key: account and PIN), all at once; its answer holds
  # the callback and the address of its event stream.
  sed 's/}$/,"pin":"4711"}/' "$work/bodies" |
    xargs -P "$calls" -d '\n' -I{} curl -s -w '\n' -XPOST "http://127.0.0.1:$port/v1/public/callbacks" \
      -H 'Content-Type: application/json' -d '{}' | tee "$work/responses" | grep -o '"id":"cb-[^"]*"' | cut -d'"' -f4 >"$work/ids"
else
  xargs -P "$calls" -d '\n' -I{} curl -s -w '\n' -XPOST "http://127.0.0.1:$port/v1/callbacks" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{}' <"$work/bodies" | tee "$work/responses" | grep -o '"id":"cb-[^"]*"' | cut -d'"' -f4 >"$work/ids"
fi
[ "$(wc -l <"$work/ids")" -eq "$calls" ] || { echo "only $(wc -l <"$work/ids") of $calls accepted"; grep -v "\"id\":\"cb-" "$work/responses" | sort | uniq -c | head -5; exit 1; }

if [ "$cancel" = 1 ]; then
  cancels=()
  head -n "$cancel_count" "$work/ids" >"$work/cancel-ids"
  while read -r id; do
    ( sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", r % 4000 / 1000 }')"
      curl -s -o /dev/null -XDELETE "http://127.0.0.1:$port/v1/callbacks/$id" -H "Authorization: Bearer $key" ) &
    cancels+=($!)
  done <"$work/cancel-ids"
  wait "${cancels[@]}"
fi

# Each to its end.
bad=0
while read -r id; do
  for _ in $(seq 600); do
    body=$(curl -s "http://127.0.0.1:$port/v1/callbacks/$id" -H "Authorization: Bearer $key")
    state=$(grep -o '"state":"[a-z_]*"' <<<"$body" | head -1 | cut -d'"' -f4)
    case "$state" in completed|failed|canceled|refused) break ;; esac
    sleep 0.2
  done
  account=$(ctl --json accounts show "$(grep -o '"account":"burst-[0-9]*"' <<<"$body" | cut -d'"' -f4)")
  line=$(python3 -c '
import json, sys
from decimal import Decimal
c = json.loads(sys.argv[1]); b = c["legs"]["b"]; acct = json.loads(sys.argv[2])
cost = Decimal(c["cost"]["amount"]) if c.get("cost") else Decimal(0)
charged = Decimal("3.00") - Decimal(acct["balance"])
money = "money ok" if charged == cost and Decimal(acct["reserved"]) == 0 else "MONEY charged %s reserved %s" % (charged, acct["reserved"])
# By e-mail: from the mail of account burst-<i>: A its registered number, B from the subject.
numbers = []
if sys.argv[3] == "email":
    i = int(c["account"].split("-")[1]); want = ("email", str(int(sys.argv[4]) + i), str(int(sys.argv[5]) + i))
    got = (c.get("origin"), c.get("caller"), c.get("callee"))
    # Without B in the subject, a call canceled before A keyed it has none.
    if c.get("callee") is None and c["state"] == "canceled" and c["legs"]["b"].get("cause", 0) == 0:
        want = want[:2] + (None,)
    numbers = ["origin email, A and B ok" if got == want else "WRONG origin/A/B %s/%s/%s" % got]
print(c["id"], c["state"], c.get("outcome"), "B cause", b["cause"], "B billsec", b["billsec"], "cost", cost, *numbers, money)
' "$body" "$account" "$via" "$a_first" "$b_first")
  echo "$line"
  [ "$via" != email ] || [[ "$line" == *"origin email, A and B ok"* ]] || bad=$((bad + 1))
  if [ "$cancel" = 1 ]; then
    case "$line" in *" canceled canceled "*"money ok"|*" completed partner_hangup "*"B billsec 5 "*"money ok") ;; *) bad=$((bad + 1)) ;; esac
  else
    case "$line" in *" completed "*"B billsec 5 "*"money ok") ;; *) bad=$((bad + 1)) ;; esac
  fi
done <"$work/ids"
if [ "$via" = email ]; then
  # The trigger's own account of the mails, and the mailbox: every mail flagged processed.
  mail_status=$(curl -s "http://127.0.0.1:$port/v1/triggers" -H "Authorization: Bearer $key" | python3 -c '
import json, sys
t = [t for t in json.load(sys.stdin)["triggers"] if t["plugin"] == "callback.trigger.email"][0]
print("healthy" if t["healthy"] else "UNHEALTHY (%s)" % t["last_error"], "counts",
      ", ".join("%s %s" % kv for kv in sorted(t["counts"].items())))')
  mails=$(doveadm -c "$dove/dovecot.conf" search -u callback mailbox INBOX ALL | grep -c . || true)
  unflagged=$(doveadm -c "$dove/dovecot.conf" search -u callback mailbox INBOX UNKEYWORD '$CallbackDone' | grep -c . || true)
  echo "the e-mail trigger: $mail_status; the mailbox: $mails mails, $unflagged not flagged \$CallbackDone"
  case "$mail_status" in "healthy counts "*"accepted $calls"|"healthy counts "*"accepted $calls, "*) ;; *) bad=$((bad + 1)) ;; esac
  [ "$mails" = "$calls" ] && [ "$unflagged" = 0 ] || bad=$((bad + 1))
  # One reply a mail, once its call ended, to the account's address, threaded to the mail.
  for _ in $(seq 100); do [ "$(ls "$dove/replies/new" 2>/dev/null | wc -l)" -ge "$calls" ] && break; sleep 0.1; done
  replies=$(python3 - "$dove/replies/new" "$calls" "$$" <<'PY'
import os, sys, email
folder, calls, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ok, seen = 0, set()
for name in os.listdir(folder) if os.path.isdir(folder) else []:
    m = email.message_from_binary_file(open(os.path.join(folder, name), "rb"))
    to = m["X-RcptTo"]; i = to.split("@")[0].split("-")[1] if to and to.startswith("burst-") else None
    body = m.get_payload(decode=True).decode()
    if i is not None and m["In-Reply-To"] == "<burst-%s.%s@burst.example>" % (i, pid) and "Your call" in body:
        ok += 1; seen.add(i)
print("%d replies, %d right (one to each account, threaded, with the outcome)" % (ok, len(seen)))
PY
)
  echo "the reply mails: $replies"
  [ "$replies" = "$calls replies, $calls right (one to each account, threaded, with the outcome)" ] || bad=$((bad + 1))
fi
echo "Asterisk's log of the run, prompts played: $(tail -n +"$((before + 1))" "$log" | grep -o "Playing '[a-z/-]*" |
  cut -d"'" -f2 | sort | uniq -c | awk '{ printf "%s%s x%s", n++ ? ", " : "", $2, $1 }'); 'Playback failed': $(
  tail -n +"$((before + 1))" "$log" | grep -c 'Playback failed' || true)"
left=$(asterisk_left)
echo "Asterisk afterwards: $left"
[ "$left" = "0 active channels, 0 bridges" ] || bad=$((bad + 1))
echo "burst of $calls$([ "$cancel" = 1 ] && echo " with cancels")$([ "$via" = sms ] && echo " asked by SMS")$([ "$via" = ani ] && echo " asked by missed calls (ANI, the IVR)")$([ "$via" = email ] && echo " asked by e-mail")$([ "$via" = web ] && echo " asked on the web page")$([ "$no_b" = 1 ] && echo " without B (the IVR)") on $(AST_PREFIX=${AST_PREFIX:-/tmp/ast} "${AST_PREFIX:-/tmp/ast}/sbin/asterisk" -V 2>/dev/null || echo Asterisk): $((calls - bad)) right, $bad misreported"
[ "$bad" -eq 0 ]
