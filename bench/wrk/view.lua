-- A whole page view: the page, then each fragment it loads at once (an HTMX request), in turn, with
-- the headers given on wrk's command line (the session cookie). bench/run.py divides the requests by
-- how many make one view. The fragments' paths are the script's arguments.

dofile((string.gsub(debug.getinfo(1, "S").source, "^@(.*)view%.lua$", "%1report.lua")))

local paths = {}
local next_path = 0

init = function(args)
  paths = { wrk.path }
  for _, path in ipairs(args) do
    paths[#paths + 1] = path
  end
end

request = function()
  next_path = next_path % #paths + 1
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  if next_path > 1 then
    headers["HX-Request"] = "true"
  end
  return wrk.format("GET", paths[next_path], headers)
end
