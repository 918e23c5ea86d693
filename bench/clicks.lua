-- wrk script: GET the paths listed in the file named by $BENCH_PATHS, round robin, each
-- thread from its own offset; count the 302s; print one JSON summary line at the end.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    paths = {}
    for line in io.lines(os.getenv("BENCH_PATHS")) do
        paths[#paths + 1] = line
    end
    math.randomseed(os.time() + #threads * 7919)
    at = math.random(#paths)
    redirects = 0
    wrk.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
        .. " (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
end

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
    function delay()
        return pause
    end
end

function request()
    at = at % #paths + 1
    return wrk.format("GET", paths[at])
end

function response(status, headers, body)
    if status == 302 then
        redirects = redirects + 1
    end
end

function done(summary, latency, requests)
    local redirected = 0
    for _, thread in ipairs(threads) do
        redirected = redirected + thread:get("redirects")
    end
    local e = summary.errors
    io.write(string.format(
        'BENCH_JSON {"requests": %d, "duration_us": %d, "redirects": %d, "errors": %d,'
            .. ' "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
        summary.requests, summary.duration, redirected,
        e.connect + e.read + e.write + e.status + e.timeout,
        latency:percentile(50), latency:percentile(99), latency.max))
end
