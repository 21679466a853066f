-- POSTs distinct, correctly signed Stripe events to the webhook endpoint.
-- Arguments (after wrk's "--"): the events file and the number of wrk threads. The file holds two
-- lines per event, its Stripe-Signature header and then its body; thread i takes every n-th event
-- from the i-th on, so no two threads send the same event. Requests are built once, in init.
-- If a thread runs out of events it starts over: bench/run.py makes enough that this never happens
-- and reports it (duplicates are answered 200 without storing anything: a cheaper path).

dofile((string.gsub(debug.getinfo(1, "S").source, "^@(.*)webhook%.lua$", "%1report.lua")))

local thread_count = 0

setup = function(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

init = function(args)
  local path, threads = args[1], tonumber(args[2])
  prepared = {}
  local file = assert(io.open(path, "r"))
  local index = 0
  while true do
    local signature = file:read("*l")
    if not signature then break end
    local body = file:read("*l")
    if index % threads == thread_index then
      prepared[#prepared + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Stripe-Signature"] = signature,
      }, body)
    end
    index = index + 1
  end
  file:close()
  next_request = 0
end

request = function()
  next_request = next_request % #prepared + 1
  return prepared[next_request]
end
