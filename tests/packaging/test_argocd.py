"""The Argo CD health check of ModelMonitor, run by a Lua 5.1 interpreter on real statuses.

Argo CD evaluates health scripts with gopher-lua, a Lua 5.1; Debian's lua5.1 runs the same
language (`make test-deps` installs it). The statuses come from `run_check` on the bundled
example, so they have the shape the operator writes.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmon.check import run_check
from modelmon.cli import status_dict
from modelmon.monitor_files import load_monitors
from toolcheck import require

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "manifests" / "argocd" / "modelmonitor-health.lua"
EXAMPLE = REPO_ROOT / "examples" / "breast-cancer" / "monitor.yaml"


def lua_literal(value: Any) -> str:
    """A Lua table constructor for JSON data; null members are left out, as in Argo CD."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(value)
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(c if c.isalnum() or c in " .,:;_-/()[]<>=%'+*#@!?"
                             else f"\\{ord(c)}" for c in value) + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value if v is not None) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}"
                               for k, v in value.items() if v is not None) + "}"
    raise TypeError(type(value))


def health(obj: dict[str, Any], script: Path = SCRIPT) -> dict[str, str]:
    """Run the script as Argo CD does: `obj` global, the chunk returns `hs`."""
    lua = require("lua5.1")
    harness = (f"obj = {lua_literal(obj)}\n"
               f"local hs = dofile({lua_literal(str(script))})\n"
               'io.write(hs.status, "\\n", hs.message or "", "\\n")\n')
    proc = subprocess.run([lua, "-"], input=harness, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    status, message = proc.stdout.split("\n", 1)
    return {"status": status, "message": message.rstrip("\n")}


def resource(status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
                           "metadata": {"name": "m", "namespace": "ml", "generation": generation},
                           "spec": {}}
    if status is not None:
        obj["status"] = status
    return obj


def checked(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """The status the operator writes for the example monitor with some changes."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    for name in ("reference.csv", "current.csv"):
        shutil.copy(EXAMPLE.parent / name, tmp_path / name)
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc))
    monitor = load_monitors(path)[0]
    status = status_dict(run_check(monitor.spec, base_dir=tmp_path, generation=1))
    return json.loads(json.dumps(status))  # type: ignore[no-any-return]


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def ready(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_healthy(tmp_path: Path) -> None:
    status = checked(tmp_path, current={"source": {"url": "reference.csv"}, "minRows": 50})
    assert status["phase"] == "Healthy"
    hs = health(resource(status))
    assert hs["status"] == "Healthy" and hs["message"].startswith("No findings in the check at")


def test_drifting_is_healthy_because_ready_is_true(tmp_path: Path) -> None:
    """The monitor works; the model's drift is in the message, not in the health."""
    status = checked(tmp_path, performance=None, dataQuality=None)
    assert status["phase"] == "Drifting" and ready(status)["status"] == "True"
    hs = health(resource(status))
    assert hs["status"] == "Healthy"
    assert hs["message"].startswith("Drifting: [warning] 5 of 9 features drifted")


def test_degraded_is_healthy_because_ready_is_true(tmp_path: Path) -> None:
    status = checked(tmp_path)
    assert status["phase"] == "Degraded" and len(status["findings"]) > 3
    assert ready(status)["status"] == "True"
    hs = health(resource(status))
    assert hs["status"] == "Healthy" and hs["message"].startswith("Degraded: [")
    assert hs["message"].endswith("; ...")  # three findings, then an ellipsis


def test_failing_says_why(tmp_path: Path) -> None:
    status = checked(tmp_path, current={"source": {"url": "missing.csv"}})
    assert status["phase"] == "Failing" and ready(status)["status"] == "False"
    hs = health(resource(status))
    assert hs["status"] == "Degraded"
    assert re.match(r"Failing: SourceUnavailable: .*missing\.csv", hs["message"]), hs


def test_too_few_rows_is_progressing(tmp_path: Path) -> None:
    status = checked(tmp_path, current={"source": {"url": "current.csv"}, "minRows": 10_000})
    assert ready(status)["reason"] == "InsufficientData"
    hs = health(resource(status))
    assert hs["status"] == "Progressing"
    assert hs["message"].startswith("Waiting for data: spec.reference.source"), hs


def test_health_agrees_with_ready(tmp_path: Path) -> None:
    """Over statuses of real checks: Healthy exactly when Ready is True, Degraded exactly
    when Ready is False for a reason other than too few rows; and kstatus, from Reconciling
    and Stalled, says the same (Current, InProgress, Failed)."""
    statuses = [
        checked(tmp_path),
        checked(tmp_path, current={"source": {"url": "reference.csv"}, "minRows": 50}),
        checked(tmp_path, performance=None, dataQuality=None),
        checked(tmp_path, current={"source": {"url": "missing.csv"}}),
        checked(tmp_path, current={"source": {"url": "current.csv"}, "minRows": 10_000}),
        checked(tmp_path, columns={**yaml.safe_load(EXAMPLE.read_text())["spec"]["columns"],
                                   "categorical": ["no_such_column"]}),
    ]
    seen = set()
    for status in statuses:
        condition = ready(status)
        expected = ("Healthy" if condition["status"] == "True"
                    else "Progressing" if condition["reason"] == "InsufficientData"
                    else "Degraded")
        assert health(resource(status))["status"] == expected, (status["phase"], condition)
        # kstatus (Flux) reads Reconciling and Stalled: the same three answers.
        kstatus = ("Failed" if conditions(status)["Stalled"] == "True"
                   else "InProgress" if conditions(status)["Reconciling"] == "True"
                   else "Current")
        assert kstatus == {"Healthy": "Current", "Progressing": "InProgress",
                           "Degraded": "Failed"}[expected], (status["phase"], condition)
        seen.add(expected)
    assert seen == {"Healthy", "Progressing", "Degraded"}


@pytest.mark.parametrize("status", [None, {}, {"phase": "Pending"},
                                    {"phase": "Pending", "conditions": []}])
def test_before_the_first_check_it_is_progressing(status: dict[str, Any] | None) -> None:
    assert health(resource(status)) == {"status": "Progressing",
                                        "message": "Waiting for the first check"}


def test_a_spec_change_not_yet_checked_is_progressing(tmp_path: Path) -> None:
    status = checked(tmp_path)  # observedGeneration 1
    hs = health(resource(status, generation=2))
    assert hs == {"status": "Progressing", "message": "Waiting for the check of generation 2"}
    assert health(resource(status, generation=1))["status"] == "Healthy"


def test_every_phase_of_the_crd_is_mapped() -> None:
    crd = yaml.safe_load((REPO_ROOT / "crds" / "modelmonitors.modelmon.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    phases = schema["properties"]["status"]["properties"]["phase"]["enum"]
    assert set(phases) == {"Pending", "Healthy", "Drifting", "Degraded", "Failing"}
    for phase in phases:
        assert health(resource({"phase": phase}))["status"] != "Unknown", phase
    assert health(resource({"phase": "Exploded"})) == {"status": "Unknown",
                                                       "message": "Unknown phase Exploded"}


def test_the_readme_embeds_this_script() -> None:
    """README's argocd-cm snippet is what users copy: it must be this file, verbatim."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(# argocd-cm.*?)```", readme, re.S)
    assert block, "README has no argocd-cm snippet"
    cm = yaml.safe_load(block.group(1))
    key = "resource.customizations.health.modelmon.io_ModelMonitor"
    assert cm["data"][key] == SCRIPT.read_text()


def test_lua_51_rejects_newer_syntax(tmp_path: Path) -> None:
    """The interpreter is a 5.1: a script using 5.3 integer division would fail here too."""
    script = tmp_path / "new.lua"
    script.write_text("local hs = {status = 'Healthy', message = tostring(7 // 2)}\nreturn hs\n")
    lua = require("lua5.1")
    proc = subprocess.run([lua, str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
