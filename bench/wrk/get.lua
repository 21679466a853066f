-- A GET with the headers given on wrk's command line (session cookie, HX-Request...), reported as JSON.

dofile((string.gsub(debug.getinfo(1, "S").source, "^@(.*)get%.lua$", "%1report.lua")))
