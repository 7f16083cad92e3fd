-- wrk -s bench/mixed.lua URL -- IDS_FILE RUN_ID
-- 80 % GET /orders/{id} over the seeded ids, 20 % POST /orders (every fifth request of a thread),
-- each POST with a unique Idempotency-Key.
local lib = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-lib.lua")
local threads = 0
local ids
local prefix
local counter = 0
local tokens
local headers = { ["Content-Type"] = "application/json" }
local get_headers = {}

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  ids = lib.load_ids(args[1])
  prefix = (args[2] or tostring(os.time())) .. "-" .. tid .. "-"
  tokens = lib.load_tokens()
  math.randomseed(os.time() * 1000 + tid)
end

function request()
  counter = counter + 1
  if counter % 5 == 0 then
    headers["Idempotency-Key"] = prefix .. counter
    return wrk.format("POST", "/orders", lib.authorize(headers, tokens, counter), lib.order_body(counter))
  end
  return wrk.format("GET", "/orders/" .. ids[math.random(#ids)], lib.authorize(get_headers, tokens, counter))
end

function done(summary, latency, _)
  lib.report(summary, latency)
end
