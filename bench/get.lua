-- wrk -s bench/get.lua URL -- IDS_FILE
-- GET /orders/{id}, ids drawn at random from the seeded orders (one id per line in IDS_FILE);
-- with BENCH_TOKENS_FILE, a bearer token on each (in turn).
local lib = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-lib.lua")
local threads = 0
local ids
local tokens
local counter = 0
local headers = {}

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  ids = lib.load_ids(args[1])
  tokens = lib.load_tokens()
  math.randomseed(os.time() * 1000 + tid)
end

function request()
  counter = counter + 1
  return wrk.format("GET", "/orders/" .. ids[math.random(#ids)], lib.authorize(headers, tokens, counter))
end

function done(summary, latency, _)
  lib.report(summary, latency)
end
