-- Argo CD health of a ClockifyAddon, from its kstatus conditions (Ready, Reconciling, Stalled)
-- and the paused annotation. Tested by health_test.yaml (scripts/check-gitops.py).
local hs = {}
local annotations = obj.metadata.annotations or {}
if annotations["clockify-addons.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused by the annotation clockify-addons.io/paused"
  return hs
end
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the clockify-operator to report status"
  return hs
end
if obj.metadata.generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the clockify-operator to act on generation " .. tostring(obj.metadata.generation)
  return hs
end
local found = {}
for _, c in ipairs(status.conditions) do
  found[c.type] = c
end
local stalled = found["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or stalled.reason or "Stalled"
  return hs
end
local ready = found["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
else
  hs.message = "Waiting for the ClockifyAddon to become Ready"
end
return hs
