-- wrk script for SCIM `userName eq` lookups, the same for every server: each request asks for
-- one user of the population the benchmark loaded (User000000@Example.com ... up to
-- SSO_BENCH_USERS - 1), in a different case than stored, as Okta and Entra do. Environment:
-- SSO_BENCH_SCIM_PREFIX (the path without /Users), SSO_BENCH_USERS. The caller passes the token
-- with -H "Authorization: Bearer <token>". A response without exactly one user is counted and
-- reported in the line this script prints at the end.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = (os.getenv("SSO_BENCH_SCIM_PREFIX") or error("SSO_BENCH_SCIM_PREFIX is not set")):gsub("/+$", "")
  users = tonumber(os.getenv("SSO_BENCH_USERS") or error("SSO_BENCH_USERS is not set"))
  math.randomseed(os.time() + id * 7919)
  misses = 0
end

function request()
  local i = math.random(0, users - 1)
  local filter = string.format("userName%%20eq%%20%%22user%06d%%40example.COM%%22", i)
  return wrk.format("GET", prefix .. "/Users?filter=" .. filter)
end

function response(status, headers, body)
  if status ~= 200 or not (body and body:match('"totalResults"%s*:%s*1[^%d]')) then
    misses = misses + 1
  end
end

function done(summary, latency, requests)
  local m = 0
  for _, thread in ipairs(threads) do
    m = m + thread:get("misses")
  end
  io.write(string.format("lookup.lua: %d responses without exactly one user\n", m))
end
