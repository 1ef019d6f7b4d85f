-- wrk script for the SCIM benchmark, the same for every server: Okta's provisioning sequence
-- for one new user after another,
--   GET   <prefix>/Users?filter=userName eq "<user>"   (does the user exist? expects none)
--   POST  <prefix>/Users                                (Okta's user: name, work email, active)
--   PATCH <prefix>/Users/<id>                           (Okta's deactivation: active false)
-- with <id> taken from the POST's response. The state is one sequence per wrk thread, so run
-- one connection per thread (wrk -tN -cN). Environment: SSO_BENCH_SCIM_PREFIX (the path up to
-- and without /Users, e.g. /scim/v2 or /api/scim/v2.0/<directory>), SSO_BENCH_RUN (an ID that
-- differs between runs against the same server, letters, digits and "-": user names are unique
-- per run and thread).
-- The caller passes the token: -H "Authorization: Bearer <token>". A failed request is a
-- non-2xx response in wrk's summary; a POST without an "id" in its response (or a GET that
-- finds the user already) starts the next user and is counted as "unexpected" in the line
-- this script prints at the end.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- wrk.format replaces wrk.headers (the -H options) when given headers: merge them.
local function headers(extra)
  local h = {}
  for k, v in pairs(wrk.headers) do
    h[k] = v
  end
  for k, v in pairs(extra) do
    h[k] = v
  end
  return h
end

function init(args)
  prefix = os.getenv("SSO_BENCH_SCIM_PREFIX")
  if prefix == nil or prefix == "" then
    error("SSO_BENCH_SCIM_PREFIX is not set")
  end
  prefix = prefix:gsub("/+$", "")
  run = os.getenv("SSO_BENCH_RUN") or tostring(os.time())
  scim_json = headers({ ["Content-Type"] = "application/scim+json", ["Accept"] = "application/scim+json" })
  accept = headers({ ["Accept"] = "application/scim+json" })
  step = "lookup"
  serial = 0
  user_name = nil
  user_id = nil
  created = 0
  patched = 0
  unexpected = 0
end

local deactivate = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
  .. '"Operations":[{"op":"replace","value":{"active":false}}]}'

local function url_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  if step == "lookup" then
    serial = serial + 1
    user_name = string.format("bench-%s-t%d-u%d@example.com", run, id, serial)
    local filter = url_encode('userName eq "' .. user_name .. '"')
    return wrk.format("GET", prefix .. "/Users?filter=" .. filter, accept)
  elseif step == "create" then
    local body = string.format(
      '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s",'
        .. '"name":{"givenName":"Bench","familyName":"User %d"},'
        .. '"emails":[{"primary":true,"value":"%s","type":"work"}],'
        .. '"displayName":"Bench User %d","locale":"en-US","externalId":"00u-%s-%d-%d",'
        .. '"groups":[],"active":true}',
      user_name, serial, user_name, serial, run, id, serial)
    return wrk.format("POST", prefix .. "/Users", scim_json, body)
  else
    return wrk.format("PATCH", prefix .. "/Users/" .. user_id, scim_json, deactivate)
  end
end

function response(status, headers, body)
  if step == "lookup" then
    if status == 200 and body and body:match('"totalResults"%s*:%s*0[^%d]') then
      step = "create"
    else
      unexpected = unexpected + 1
      step = "lookup"
    end
  elseif step == "create" then
    local found = body and body:match('"id"%s*:%s*"([^"]+)"')
    if status >= 200 and status < 300 and found then
      created = created + 1
      user_id = found
      step = "patch"
    else
      unexpected = unexpected + 1
      step = "lookup"
    end
  else
    if status >= 200 and status < 300 then
      patched = patched + 1
    end
    step = "lookup"
  end
end

function done(summary, latency, requests)
  local c, p, u = 0, 0, 0
  for _, thread in ipairs(threads) do
    c = c + thread:get("created")
    p = p + thread:get("patched")
    u = u + thread:get("unexpected")
  end
  io.write(string.format("scim.lua: %d users created, %d deactivated, %d unexpected\n", c, p, u))
end
