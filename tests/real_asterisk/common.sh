# Sourced by the scripts of tests/real_asterisk. engine_entry ENGINE: the "engines" entry of
# their callbackd config for the real Asterisk of ../shared/asterisk/peer.sh, by --engine:
#   ami  callback.engine.ami on 127.0.0.1:5038 (the dialplan flow: one Originate, the
#        project's [callback] context dials B with L())
#   ari  callback.engine.ari on 127.0.0.1:8088 (the step flow: each leg into the Stasis app
#        callback-app, prompts, a mixing bridge, the limit timed by the engine)
#   ari-ws  the same with rest_over_websocket: REST calls as RESTRequest frames on the event
#        WebSocket (Asterisk 20.14/21.9/22.4+)
# Both log in as `callback` with the secret peer.sh sets (callbacksecret) and reach the
# fixtures' phones as Local/{number}@phones.
# ENGINE ari takes an optional APP: the Stasis application (default callback-app). Asterisk
# gives an app's events to one WebSocket only, the newest (ApplicationReplaced to the one
# before), so processes running side by side need an app each.
engine_entry() {
  case "$1" in
    ami) echo '{"plugin": "callback.engine.ami", "name": "asterisk",
               "config": {"servers": ["127.0.0.1:5038"], "username": "callback", "secret": "callbacksecret",
                          "dial_string": "Local/{number}@phones", "events": "call,user,cdr,agi,dtmf"}}' ;;
    ari) echo '{"plugin": "callback.engine.ari", "name": "asterisk",
               "config": {"servers": ["127.0.0.1:8088"], "password": "callbacksecret", "app": "'"${2:-callback-app}"'"}}' ;;
    ari-ws) echo '{"plugin": "callback.engine.ari", "name": "asterisk",
               "config": {"servers": ["127.0.0.1:8088"], "password": "callbacksecret", "app": "'"${2:-callback-app}"'",
                          "rest_over_websocket": true}}' ;;
    *) echo "unknown engine '$1' (ami, ari or ari-ws)" >&2; return 2 ;;
  esac
}

# What a run left on Asterisk: "<n> active channels, <m> bridges" (both must be 0).
asterisk_left() {
  local ast=${AST_PREFIX:-/tmp/ast} channels bridges
  channels=$("$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx 'core show channels count' 2>/dev/null |
    grep -o '^[0-9]* active channel' | cut -d' ' -f1)
  bridges=$("$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx 'bridge show all' 2>/dev/null |
    tail -n +2 | grep -c . || true)  # a header line, then one line a bridge
  echo "${channels:-?} active channels, ${bridges:-?} bridges"
}
