-- wrk script for the SMS webhook figures (benchmarks/sms_load.sh): each request is one of
-- a file's pre-signed webhooks (a signature cannot be made in wrk's Lua), every thread
-- taking its own share of the lines in turn; counted by status as count.lua does.
--   WRK_REQUESTS  the file: one request a line, "<X-Twilio-Signature>\t<form body>"
--   WRK_PATH      where to POST them (/hooks/sms/twilio)
dofile(os.getenv("WRK_LUA_DIR") .. "/count.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local count_setup, count_init = setup, init
local next_id = 0
function setup(thread)
  count_setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  count_init(args)
  lines = {}
  local n = 0
  local step = tonumber(os.getenv("WRK_THREADS_N"))
  for line in io.lines(os.getenv("WRK_REQUESTS")) do
    if n % step == id then table.insert(lines, line) end
    n = n + 1
  end
  at = 0
end

function request()
  at = at % #lines + 1
  local line = lines[at]
  local tab = line:find("\t", 1, true)
  return wrk.format(nil, os.getenv("WRK_PATH"), {["X-Twilio-Signature"] = line:sub(1, tab - 1)}, line:sub(tab + 1))
end
