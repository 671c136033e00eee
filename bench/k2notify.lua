-- wrk script for make bench: POST K2 notifications with Basic credentials.
--   wrk ... -s bench/k2notify.lua URL -- MODE PREFIX AUTHORIZATION
-- MODE distinct:  a new k2_transaction_id per request (PREFIX-thread-n)
--      same:      the same notification every time (the duplicate path)
--      webhook:   K2 Connect webhooks, read from the file named instead of
--                 AUTHORIZATION (one "signature TAB body" a line)
-- Prints one line "K2RESULT ..." that bench.py reads: the 01 replies counted
-- here (rows recorded must equal them) and the latency percentiles.

local threads = {}

function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
    for _, t in ipairs(threads) do
        t:set("nthreads", #threads)
    end
end

function init(args)
    mode, prefix, authorization = args[1], args[2], args[3]
    n, ok01, other = 0, 0, 0
    if mode == "webhook" then
        -- K2 Connect: signed JSON bodies made beforehand by bench.py (wrk's
        -- Lua has no HMAC), one "signature TAB body" a line, each thread
        -- its own share of them
        webhooks = {}
        local i = 0
        for line in io.lines(authorization) do
            if i % nthreads == tid then
                local tab = line:find("\t", 1, true)
                table.insert(webhooks, { line:sub(1, tab - 1), line:sub(tab + 1) })
            end
            i = i + 1
        end
        return
    end
    headers = {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Authorization"] = authorization,
    }
    rest = "&k2_account_id=12&mm_system_id=M-PESA&mp_transaction_id=54445"
        .. "&biller_number=888555&transaction_date=26%2F4%2F11"
        .. "&transaction_time=1%3A03%20PM&transaction_type=Paybill"
        .. "&ac_no=A123333&sender=0723456789&first_name=John&last_name=Doe"
        .. "&middle_name=K.&amount=1500&currency=KES"
    same = wrk.format("POST", nil, headers,
                      "k2_transaction_id=" .. prefix .. "-same" .. rest)
end

function request()
    if mode == "same" then
        return same
    end
    if mode == "webhook" then
        n = n % #webhooks + 1           -- (wraps: resends, if ever too few)
        local w = webhooks[n]
        return wrk.format("POST", nil, {
            ["Content-Type"] = "application/json",
            ["X-KopoKopo-Signature"] = w[1],
        }, w[2])
    end
    n = n + 1
    return wrk.format("POST", nil, headers, "k2_transaction_id=" .. prefix
                      .. "-" .. tid .. "-" .. n .. rest)
end

function response(status, hdrs, body)
    if status == 200 and (body:find('"status":"01"', 1, true)
                          or body:find('"outcome":"accepted"', 1, true)) then
        ok01 = ok01 + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local ok, bad = 0, 0
    for _, t in ipairs(threads) do
        ok = ok + t:get("ok01")
        bad = bad + t:get("other")
    end
    io.write(string.format(
        "K2RESULT requests=%d duration_us=%d ok01=%d other=%d non2xx=%d "
        .. "socket_errors=%d connect=%d read=%d write=%d timeout=%d "
        .. "p50_us=%d p99_us=%d max_us=%d\n",
        summary.requests, summary.duration, ok, bad, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.timeout, summary.errors.connect, summary.errors.read,
        summary.errors.write, summary.errors.timeout, latency:percentile(50),
        latency:percentile(99), latency.max))
end
