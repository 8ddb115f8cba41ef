-- Argo CD health check of a ModelMonitor (modelmon.io/v1alpha1), for
--   resource.customizations.health.modelmon.io_ModelMonitor in argocd-cm.
-- Argo CD runs it with gopher-lua (Lua 5.1), so it uses nothing newer.
--
--   Progressing  no status yet, phase Pending, or status older than the spec
--                (observedGeneration < generation: a synced change not checked yet)
--   Healthy      phase Healthy: no finding
--   Degraded     phase Drifting or Degraded: the model needs attention
--                phase Failing: the check cannot run (invalid spec, source unavailable)
--   Unknown      a phase this script does not know
local hs = {}

local function ready_condition(status)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then
      return c
    end
  end
  return nil
end

local function first_findings(status, limit)
  local parts = {}
  if status.findings ~= nil then
    for i, f in ipairs(status.findings) do
      if i > limit then
        table.insert(parts, "...")
        break
      end
      table.insert(parts, "[" .. tostring(f.severity) .. "] " .. tostring(f.message))
    end
  end
  return table.concat(parts, "; ")
end

local status = obj.status
if status == nil or status.phase == nil or status.phase == "Pending" then
  hs.status = "Progressing"
  hs.message = "Waiting for the first check"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the check of generation " .. tostring(generation)
  return hs
end

local phase = status.phase
if phase == "Healthy" then
  hs.status = "Healthy"
  hs.message = "No findings"
  if status.lastCheck ~= nil and status.lastCheck.time ~= nil then
    hs.message = "No findings in the check at " .. status.lastCheck.time
  end
elseif phase == "Drifting" or phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. first_findings(status, 3)
elseif phase == "Failing" then
  hs.status = "Degraded"
  local ready = ready_condition(status)
  if ready ~= nil then
    hs.message = "Failing: " .. tostring(ready.reason) .. ": " .. tostring(ready.message)
  else
    hs.message = "Failing: the check cannot run"
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
