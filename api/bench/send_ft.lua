-- wrk script: POST /send-ft with a distinct Idempotency-Key per request (so every request inserts a claim).
-- Token from NEAR_PAYOUTS_BENCH_TOKEN. No per-response Lua callback (it would cost the load generator CPU on the
-- same two cores): wrk counts non-2xx answers itself ("status" errors), and run.sh checks that the number of
-- claim rows equals the number of requests.

local threads = {}
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))

function setup(thread)
  thread:set("tid", #threads + 1)
  thread:set("run", run)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  token = os.getenv("NEAR_PAYOUTS_BENCH_TOKEN") or ""
  receivers = { "alice.devnet", "bob.devnet", "carol.devnet", "dave.devnet" }
end

function request()
  counter = counter + 1
  local key = string.format("bench-%s-%d-%d", run, tid, counter)
  local body = string.format('{"receiver_id":"%s","amount":"%d","memo":"wrk"}',
    receivers[(counter % #receivers) + 1], 1000 + counter)
  return wrk.format("POST", "/send-ft", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("requests %d, errors: connect %d, read %d, write %d, status %d, timeout %d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
