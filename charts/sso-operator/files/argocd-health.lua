-- Argo CD health check for sso-operator.dev IdentityProvider and ScimToken: Healthy when the
-- Ready condition is True, Suspended when the IdentityProvider is disabled, Degraded with the
-- condition's message otherwise, Progressing until the operator has observed the latest
-- generation.
local hs = { status = "Progressing", message = "Waiting for sso-operator to reconcile" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.message = "Waiting for sso-operator to reconcile generation " .. tostring(generation)
  return hs
end
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      local message = condition.message
      if message == nil or message == "" then
        message = condition.reason
      end
      if condition.status == "True" then
        hs.status = "Healthy"
      elseif condition.reason == "Disabled" then
        hs.status = "Suspended"
      else
        hs.status = "Degraded"
      end
      hs.message = message
      return hs
    end
  end
end
return hs
