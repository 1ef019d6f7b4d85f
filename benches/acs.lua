-- wrk script for the ACS benchmark: posts each pre-signed SAMLResponse (one form body per
-- line of the file named by SSO_BENCH_BODIES) at most once: thread i of n sends bodies i, i+n,
-- ... Once a thread's share is used up it repeats its last body, which the replay cache
-- refuses (counted by wrk as non-2xx/3xx), so a run that ran out of bodies shows it.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(os.getenv("SSO_BENCH_BODIES")) do
    table.insert(bodies, line)
  end
  step = tonumber(os.getenv("SSO_BENCH_THREADS") or "2")
  next_index = id + 1
end

function request()
  local index = next_index
  if index > #bodies then
    index = #bodies
  end
  next_index = next_index + step
  return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" }, bodies[index])
end
