-- wrk script for the REST figures (benchmarks/rest_load.sh): sends one request, the same
-- on every connection (keep-alive), and counts the answers by status. Settings come from
-- the environment:
--   WRK_METHOD  GET (default) or POST
--   WRK_BODY    the body for POST (sent as application/json)
--   WRK_AUTH    if set, "Authorization: Bearer <WRK_AUTH>"
-- At the end it prints one machine-readable line:
--   RESULT requests=N seconds=S rps=R p50_us=.. p90_us=.. p99_us=.. max_us=.. errors=E status=200:n,202:m,..
-- (errors: wrk's connect/read/write/timeout errors).
local threads = {}

wrk.method = os.getenv("WRK_METHOD") or "GET"
-- Pistache 0.0.5 answers "Connection: Close" to an HTTP/1.1 request that does not ask for
-- keep-alive (the RFC 7230 default), so ask: otherwise every request is a new connection.
wrk.headers["Connection"] = "keep-alive"
local body = os.getenv("WRK_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for status, n in pairs(c) do total[status] = (total[status] or 0) + n end
  end
  local keys = {}
  for status in pairs(total) do table.insert(keys, status) end
  table.sort(keys)
  local parts = {}
  for _, status in ipairs(keys) do table.insert(parts, status .. ":" .. total[status]) end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f rps=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d status=%s\n",
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
