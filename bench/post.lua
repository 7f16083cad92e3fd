-- wrk -s bench/post.lua URL -- RUN_ID
-- POST /orders with a unique Idempotency-Key per request: RUN_ID-<thread>-<counter>; with
-- BENCH_TOKENS_FILE, a bearer token on each (in turn).
local lib = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-lib.lua")
local threads = 0
local prefix
local counter = 0
local tokens
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = (args[1] or tostring(os.time())) .. "-" .. tid .. "-"
  tokens = lib.load_tokens()
end

function request()
  counter = counter + 1
  headers["Idempotency-Key"] = prefix .. counter
  return wrk.format("POST", "/orders", lib.authorize(headers, tokens, counter), lib.order_body(counter))
end

function done(summary, latency, _)
  lib.report(summary, latency)
end
