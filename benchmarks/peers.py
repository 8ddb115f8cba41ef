"""What the benchmark scripts share (``run.py``, ``calibration.py``, ``estimation.py``):
the cache directory, the peers' virtualenv and the machine's description.

Standard library only, so the workers that run in the peers' virtualenv can import it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cache_dir() -> Path:
    """Where builds, the peers' virtualenv and saved runs live."""
    return Path(os.environ.get("MODELMON_CACHE", Path.home() / ".cache" / "modelmon"))


def bench_python() -> Path | None:
    """The peers' virtualenv interpreter (``run.py``'s ``ensure_venv``), if it exists."""
    python = cache_dir() / "bench-venv" / "bin" / "python"
    return python if python.exists() else None


def machine() -> dict[str, str]:
    """The CPU model, the CPUs (all, and those this process may use), RAM and OS."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in
                      Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        ram = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except OSError:
        ram = "unknown"
    return {"cpus": str(os.cpu_count()), "nproc": str(len(os.sched_getaffinity(0))),
            "arch": platform.machine(), "cpu": cpu, "ram": ram,
            "os": f"{platform.system()} {platform.release()}"}
