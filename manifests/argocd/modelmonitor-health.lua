-- Argo CD health check of a ModelMonitor (modelmon.io/v1alpha1), for
--   resource.customizations.health.modelmon.io_ModelMonitor in argocd-cm.
-- Argo CD runs it with gopher-lua (Lua 5.1), so it uses nothing newer.
--
-- It follows the Ready condition, which says whether the monitor does its job (the check
-- of the current spec ran to a verdict); Reconciling and Stalled say the same to kstatus
-- (Flux), and a test holds the three in agreement. What the check
-- found about the model (phase Drifting or Degraded) is in the message, the alerts and
-- the notifications; it does not make the monitor unhealthy, so a drifting model never
-- holds a sync wave (such as the one that deploys its retrained successor).
--
--   Progressing  no Ready condition yet, a status older than the spec
--                (observedGeneration < generation), or Ready=False with reason
--                InsufficientData (waiting for enough rows)
--   Healthy      Ready=True: the check ran; the message names the phase and findings
--   Degraded     Ready=False for any other reason: the check cannot run (phase Failing:
--                invalid spec, source unavailable, invalid data)
--   Unknown      a phase this script does not know
local hs = {}

local PHASES = {Pending = true, Healthy = true, Drifting = true, Degraded = true,
                Failing = true}

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
if status ~= nil and status.phase ~= nil and not PHASES[status.phase] then
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(status.phase)
  return hs
end

local ready = nil
if status ~= nil then
  ready = ready_condition(status)
end
if ready == nil then
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

if ready.status == "True" then
  hs.status = "Healthy"
  if status.phase == "Healthy" then
    hs.message = "No findings"
    if status.lastCheck ~= nil and status.lastCheck.time ~= nil then
      hs.message = "No findings in the check at " .. status.lastCheck.time
    end
  else
    hs.message = tostring(status.phase) .. ": " .. first_findings(status, 3)
  end
elseif ready.status == "False" and ready.reason == "InsufficientData" then
  hs.status = "Progressing"
  hs.message = "Waiting for data: " .. tostring(ready.message)
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = "Failing: " .. tostring(ready.reason) .. ": " .. tostring(ready.message)
else
  hs.status = "Progressing"
  hs.message = "Ready is " .. tostring(ready.status) .. ": " .. tostring(ready.message)
end
return hs
