-- wrk_stats.lua -- print wrk's own figures as one JSON line for bench/lib/harness.py.
--
--   wrk ... -s bench/lib/wrk_stats.lua URL [-- DEPTH]
--
-- With DEPTH > 1, DEPTH copies of the request are sent back to back on each
-- connection (HTTP/1.1 pipelining, as TechEmpower's pipeline.lua does); wrk
-- then counts DEPTH responses per write. Without it the request stays static
-- (no request() function), which keeps wrk on its fast path.

local depth = 1

init = function(args)
    depth = tonumber(args[1]) or 1
    if depth > 1 then
        local r = {}
        for i = 1, depth do
            r[i] = wrk.format()
        end
        local batch = table.concat(r)
        request = function()
            return batch
        end
    end
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
        '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max, latency.mean))
end
