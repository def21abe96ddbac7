-- wrk's script for the edge's benchmark (bench/edge.py runs it): every request carries fresh
-- command ids, so the edge appends each one (a repeated id would be answered from its
-- idempotency cache, which measures the cache, not appends).
--
-- Environment: EDGE_TEMPLATES (one command a line, its JSON after the id: `,"type":…}`),
-- EDGE_BATCH (commands a request; 0: one command as a JSON object), EDGE_RUN (the ids' prefix,
-- unique per run), EDGE_TOKEN, EDGE_OUT (a folder: each thread writes the ids answered 202 to
-- <thread>.ids, one a line). `done` prints one JSON line: latency percentiles (µs), statuses
-- of requests and of commands, commands sent (by thread: thread t's ids are
-- <run>-<t>-1 … <run>-<t>-<sent>) and requests answered.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("thread_no", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   batch = tonumber(os.getenv("EDGE_BATCH"))
   prefix = os.getenv("EDGE_RUN") .. "-" .. thread_no .. "-"
   tails = {}
   for line in io.lines(os.getenv("EDGE_TEMPLATES")) do
      tails[#tails + 1] = line
   end
   out = io.open(os.getenv("EDGE_OUT") .. "/" .. thread_no .. ".ids", "w")
   headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. os.getenv("EDGE_TOKEN"),
   }
   sent, answered = 0, 0
   statuses, command_statuses = {}, {}
end

local function command()
   sent = sent + 1
   return '{"id":"' .. prefix .. sent .. '"' .. tails[sent % #tails + 1]
end

function request()
   local body
   if batch == 0 then
      body = command()
   else
      local parts = {}
      for i = 1, batch do
         parts[i] = command()
      end
      body = "[" .. table.concat(parts, ",") .. "]"
   end
   return wrk.format("POST", nil, headers, body)
end

function response(status, _, body)
   answered = answered + 1
   local s = tostring(status)
   statuses[s] = (statuses[s] or 0) + 1
   for id, st in body:gmatch('"id":"([^"]*)","status":(%d+)') do
      command_statuses[st] = (command_statuses[st] or 0) + 1
      if st == "202" then
         out:write(id, "\n")
      end
   end
   out:flush()
end

local function merge(into, from)
   for k, v in pairs(from) do
      into[k] = (into[k] or 0) + v
   end
end

function done(summary, latency, _)
   local req, cmd = {}, {}
   local total_sent, total_answered, by_thread = 0, 0, {}
   for _, thread in ipairs(threads) do
      merge(req, thread:get("statuses"))
      merge(cmd, thread:get("command_statuses"))
      by_thread[tostring(thread:get("thread_no"))] = thread:get("sent")
      total_sent = total_sent + thread:get("sent")
      total_answered = total_answered + thread:get("answered")
   end
   local function object(t)
      local parts = {}
      for k, v in pairs(t) do
         parts[#parts + 1] = string.format('"%s":%d', k, v)
      end
      return "{" .. table.concat(parts, ",") .. "}"
   end
   local e = summary.errors
   io.write(string.format(
      '{"duration_us":%d,"requests":%d,"commands_sent":%d,"responses_read":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.0f,' ..
      '"statuses":%s,"command_statuses":%s,"sent_by_thread":%s,' ..
      '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
      summary.duration, summary.requests, total_sent, total_answered,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean, object(req), object(cmd), object(by_thread), e.connect, e.read, e.write, e.timeout))
end
