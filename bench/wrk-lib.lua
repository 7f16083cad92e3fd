-- Shared by get.lua, post.lua and mixed.lua (loaded with dofile from the same folder):
-- reading the seeded order ids, unique Idempotency-Keys, and one machine-readable result line.
local lib = {}

function lib.load_ids(path)
  local ids = {}
  for line in io.lines(path) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  assert(#ids > 0, "no order ids in " .. path)
  return ids
end

-- Bearer tokens (one per line) from BENCH_TOKENS_FILE, when the bench sets it (--jwt); else none.
function lib.load_tokens()
  local path = os.getenv("BENCH_TOKENS_FILE")
  if path == nil or path == "" then return nil end
  local tokens = {}
  for line in io.lines(path) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  assert(#tokens > 0, "no tokens in " .. path)
  return tokens
end

-- Sets headers.Authorization to the n-th token (in turn), when there are tokens.
function lib.authorize(headers, tokens, n)
  if tokens then headers["Authorization"] = tokens[(n % #tokens) + 1] end
  return headers
end

-- Two request bodies with two items each; the customer varies so rows are not all identical.
function lib.order_body(n)
  return '{"customerId":"c-' .. (n % 1000) .. '","currency":"EUR","items":['
    .. '{"sku":"SKU-1","quantity":2,"unitPrice":1999},{"sku":"SKU-2","quantity":1,"unitPrice":500}]}'
end

-- Printed by done() in the main thread; bench/lib/load.ts parses the line that starts with WRK_RESULT.
function lib.report(summary, latency)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"durationUs":%d,"bytes":%d,"connectErrors":%d,"readErrors":%d,'
      .. '"writeErrors":%d,"statusErrors":%d,"timeouts":%d,"p50Us":%d,"p95Us":%d,"p99Us":%d,'
      .. '"maxUs":%d,"meanUs":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end

return lib
