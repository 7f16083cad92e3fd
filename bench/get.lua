-- wrk -s bench/get.lua URL -- IDS_FILE
-- GET /orders/{id}, ids drawn at random from the seeded orders (one id per line in IDS_FILE).
local lib = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-lib.lua")
local threads = 0
local ids

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  ids = lib.load_ids(args[1])
  math.randomseed(os.time() * 1000 + tid)
end

function request()
  return wrk.format("GET", "/orders/" .. ids[math.random(#ids)])
end

function done(summary, latency, _)
  lib.report(summary, latency)
end
