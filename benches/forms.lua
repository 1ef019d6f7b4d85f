-- wrk script for single-use form posts (pre-signed SAMLResponses at the ACS, authorization
-- codes and refresh tokens at the OIDC token endpoint): posts each form body (one per line of
-- the file named by SSO_BENCH_BODIES) at most once: thread i of n sends bodies i, i+n, ...
-- Once a thread's share is used up it repeats its last body, which the server refuses (counted
-- by wrk as non-2xx/3xx), so a run that ran out of bodies shows it. SSO_BENCH_AUTHORIZATION,
-- when set, is sent as the Authorization header.
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
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  local authorization = os.getenv("SSO_BENCH_AUTHORIZATION")
  if authorization and authorization ~= "" then
    headers["Authorization"] = authorization
  end
end

function request()
  local index = next_index
  if index > #bodies then
    index = #bodies
  end
  next_index = next_index + step
  return wrk.format("POST", nil, headers, bodies[index])
end
