"""What a cluster administrator lets monitors use: the operator's trust boundary.

Beside the API (``api``): a ``ModelMonitor`` is written by a tenant and is untrusted; this
policy comes from the administrator (``modelmon run`` flags, their environment twins, the
chart's values) and bounds what any monitor can make the operator do: which local
directories a ``url`` source may read, which destinations a source or notifier may connect
to, how many bytes one source may bring, and which Secrets and ConfigMaps a monitor may
use. ``sources`` and ``outputs`` read it from their context; nothing else decides it.

``modelmon check`` runs on behalf of whoever runs it and uses ``Policy.local()``: files
beside the monitor, any destination, no label required. The operator uses what
``modelmon run`` was given, whose defaults are closed (``Policy.operator()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Where the container's memory limit is read (cgroup v2, then v1).
CGROUP_MEMORY_FILES = (Path("/sys/fs/cgroup/memory.max"),
                       Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
#: The share of the container's memory limit one check may hold of a window by default:
#: two workers each check one window beside its reference, and the interpreter, the
#: libraries and the cached references of the other monitors keep the other half.
CHECK_MEMORY_SHARE = 4

#: The share of the container's memory limit the fitted references kept between checks may
#: take by default (``modelmon run --reference-cache-bytes``): beside the two windows of
#: ``CHECK_MEMORY_SHARE``, a quarter is left for the interpreter, the libraries and the
#: monitors' statuses.
REFERENCE_CACHE_SHARE = 4
#: The fitted references kept between checks outside a container with a memory limit.
DEFAULT_REFERENCE_CACHE_BYTES = 512 * 1024 * 1024

#: The label a Secret or ConfigMap must carry (value "true") before a monitor may use it.
USE_LABEL = "modelmon.io/use"

#: Bytes one source may bring into the operator by default (see ``Policy.max_bytes``).
#: The chart gives the pod 1Gi; with two workers each check holding a reference and a
#: current window, four sources can be in memory at once, and a parsed frame takes up to
#: about twice its text while parsing (pandas' buffers and the frame): 4 x 2 x 64 MiB
#: leaves half the limit for the operator and the cached references of other monitors.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

#: ``Policy.max_bytes`` of ``modelmon check``: no limit but the monitor's own ``maxBytes``.
NO_BYTE_LIMIT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Egress:
    """Where connections that a monitor causes may go (checked after name resolution).

    ``allow`` and ``deny`` hold networks in CIDR form (``10.0.0.0/8``; an address is one
    host), host names (``prometheus-operated.monitoring.svc``) or ``*.suffix``. A
    destination is refused when it matches ``deny``, or when ``allow`` is not empty and it
    matches none of it; loopback, link-local, cloud metadata and unspecified addresses are
    refused unless an ``allow`` network at least as specific as theirs contains them.
    ``sources.egress`` holds the rules in full and applies them.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    enforce: bool = True
    """False: every destination is allowed (``modelmon check`` on a laptop)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The administrator's bounds on every monitor (see the module doc)."""

    local_paths: tuple[Path, ...] | None = None
    """Directories whose files ``url`` sources may read (resolved); None: any local path
    (``modelmon check``), empty: none (the operator's default)."""
    egress: Egress = field(default_factory=Egress)
    max_bytes: int = DEFAULT_MAX_BYTES
    """Default byte budget of one source, and the most a source's ``maxBytes`` may ask for
    (``NO_BYTE_LIMIT`` for ``modelmon check``)."""
    max_memory: int | None = None
    """The bytes of window data one check may hold at once (``modelmon run
    --max-check-memory``); None: no bound. A ``url`` window larger than this is streamed
    (``sources.url``) and the columns that need all their values must each fit."""
    use_label: str | None = USE_LABEL
    """The label (value "true") a Secret or ConfigMap needs before a monitor may use it;
    None: no label is needed (``modelmon check``)."""

    @classmethod
    def local(cls) -> Policy:
        """``modelmon check``: the person running it already reads what it reads."""
        return cls(local_paths=None, egress=Egress(enforce=False), max_bytes=NO_BYTE_LIMIT,
                   max_memory=default_max_memory(), use_label=None)

    @classmethod
    def operator(cls) -> Policy:
        """The operator's defaults: no local file, default egress rules, labels needed."""
        return cls(local_paths=(), max_memory=default_max_memory())


def container_memory(files: tuple[Path, ...] | None = None) -> int | None:
    """The container's memory limit in bytes (its cgroup's: ``files``, by default
    ``CGROUP_MEMORY_FILES``), or None without one."""
    for path in CGROUP_MEMORY_FILES if files is None else files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        # cgroup v2 says "max", v1 a number near 2**63 when there is no limit.
        if text.isdigit() and int(text) < 2**60:
            return int(text)
        return None
    return None


def default_max_memory(files: tuple[Path, ...] | None = None) -> int | None:
    """``Policy.max_memory`` by default: a quarter of the container's memory limit
    (``CHECK_MEMORY_SHARE``), or no bound outside a container that has one."""
    limit = container_memory(files)
    return None if limit is None else limit // CHECK_MEMORY_SHARE


def default_reference_cache_bytes(files: tuple[Path, ...] | None = None) -> int:
    """The bytes of fitted references kept between checks by default: a quarter of the
    container's memory limit (``REFERENCE_CACHE_SHARE``), else
    ``DEFAULT_REFERENCE_CACHE_BYTES``."""
    limit = container_memory(files)
    return DEFAULT_REFERENCE_CACHE_BYTES if limit is None else limit // REFERENCE_CACHE_SHARE
