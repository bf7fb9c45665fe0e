-- wrk script of the "Events into the store" benchmark (docs/BENCHMARKS.md):
-- each request is a batch of `per` cpo-format events (POST /webhooks/cpo,
-- bearer token), every event id unique across threads and requests.
local per = tonumber(os.getenv("CPO_BENCH_PER") or "100")
local token = os.getenv("CPO_BENCH_TOKEN") or "bench-token"
local run = os.getenv("CPO_BENCH_RUN") or "r"
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0

function request()
  n = n + 1
  local events = {}
  for i = 1, per do
    local k = n * per + i
    events[i] = string.format(
      '{"event_id":"%s-%d-%d","message_id":"msg-%016x%016x","type":"open","timestamp":"2026-12-01T10:00:00Z"}',
      run, tid, k, tid, k)
  end
  local body = "[" .. table.concat(events, ",") .. "]"
  return wrk.format("POST", "/webhooks/cpo", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
