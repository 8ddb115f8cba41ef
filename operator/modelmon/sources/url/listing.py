"""Listings of the ``url`` source: which files a url names, and the version they make up.

Part of ``sources`` (second stop on the data line), between the target and the readers:
one file's metadata (``fs.info``, or an http(s) HEAD), or every csv, parquet or jsonl file
under a prefix (hidden names skipped, date partitions outside the window pruned), and a
version tag built from that metadata alone, never from the data.
"""

from __future__ import annotations

import hashlib
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelmon.api.policy import Egress
from modelmon.api.v1alpha1 import DataFormat, Source
from modelmon.sources import egress
from modelmon.sources.base import DataError, LoadContext, SourceError
from modelmon.sources.url.partitions import in_window
from modelmon.sources.url.targets import Target, allowed_local, http_request, redact_url

SUFFIXES: dict[str, DataFormat] = {
    ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
}
MAX_FILES = 10_000
"""A prefix with more data files than this is refused (narrow it or prune partitions)."""


def format_of(path: str) -> DataFormat | None:
    """The format a path's suffix implies, if any."""
    name = urlsplit(path).path if "://" in path else path
    for suffix in reversed(Path(name).suffixes):
        fmt = SUFFIXES.get(suffix.lower())
        if fmt is not None:
            return fmt
    return None


def detect_format(path: str, declared: DataFormat | None) -> DataFormat:
    """The declared format, or the one the suffix implies."""
    if declared is not None:
        return declared
    fmt = format_of(path)
    if fmt is None:
        raise DataError(
            f"cannot tell the format of {redact_url(path)!r} from its suffix; "
            f"set format to one of csv, parquet, jsonl")
    return fmt


def _http_info(url: str, timeout: float, policy: Egress = egress.UNRESTRICTED,
               where: str = "url") -> dict[str, Any]:
    """What a HEAD request tells about an http(s) file (fsspec's ``info`` turns every
    failure into FileNotFoundError, which would hide a 503 or a refused connection).
    Its connections, redirects included, obey ``policy`` (``EgressRefusedError`` names
    ``where``)."""
    parts = urlsplit(url)
    request = http_request(url, "HEAD")
    try:
        with egress.urlopen(request, timeout, policy, where) as response:
            got = response.headers
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FileNotFoundError(url) from None
        # No HEAD here, or a signed URL that is valid for GET only: hash the content.
        if exc.code in (405, 501) or (exc.code in (401, 403) and parts.query):
            return {"type": "file"}
        if exc.code in (401, 403):
            raise PermissionError(url) from None
        raise
    info: dict[str, Any] = {"type": "file"}
    for name in ("ETag", "Last-Modified", "Content-MD5", "Digest"):
        if got.get(name):
            info[name] = got[name]
    if got.get("Content-Length") and not got.get("Content-Encoding"):
        info["size"] = int(got["Content-Length"])
    return info


# ---------------------------------------------------------------------------- versions

_VERSION_FIELDS = (
    ("VersionId", "version"), ("generation", "gen"), ("ETag", "etag"), ("etag", "etag"),
    ("md5Hash", "md5"), ("Content-MD5", "md5"), ("Digest", "digest"),
    ("LastModified", "modified"), ("Last-Modified", "modified"), ("updated", "modified"),
    ("mtime", "mtime"), ("ino", "ino"),
)


def file_version(info: Mapping[str, Any]) -> str | None:
    """A version token from ``fs.info``/listing metadata, or None if it tells no change."""
    parts = [f"{label}={info[key]}" for key, label in _VERSION_FIELDS
             if info.get(key) not in (None, "")]
    if not parts:
        return None
    return ";".join([*parts, f"size={info.get('size')}"])


def sha256_hex(text: str) -> str:
    """The SHA-256 of ``text`` (UTF-8), in hex."""
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------- listings


@dataclass(frozen=True, slots=True)
class Listing:
    """The data files a url names, with their metadata, and the version they make up."""

    files: list[tuple[str, Mapping[str, Any]]]
    version: str | None


def _hidden(relative: str) -> bool:
    return any(p.startswith(("_", ".")) for p in relative.split("/"))


def listing(source: Source, target: Target, ctx: LoadContext) -> Listing:
    """The files to read (one, or those under a prefix) from metadata alone."""
    try:
        if not target.prefix:
            info = (_http_info(target.path, target.timeout, target.egress, target.where)
                    if target.http else target.filesystem.info(target.path))
            if info.get("type") == "directory":
                raise IsADirectoryError(target.path)
            return Listing([(target.path, info)], file_version(info))
        found: dict[str, Mapping[str, Any]] = target.filesystem.find(target.path, detail=True)
    except SourceError:
        raise
    except Exception as exc:
        raise target.fail(exc, "list" if target.prefix else "read") from None
    root = target.path.rstrip("/") + "/"
    files: list[tuple[str, Mapping[str, Any]]] = []
    for path in sorted(found):
        relative = path[len(root):] if path.startswith(root) else path.rsplit("/", 1)[-1]
        if _hidden(relative) or found[path].get("type") == "directory":
            continue
        if source.format is None and format_of(path) is None:
            continue
        if source.prune_partitions and not in_window(relative, ctx):
            continue
        files.append((path, found[path]))
    if not target.remote:  # a file under an allowed prefix may be a symlink out of it
        for path, _ in files:
            allowed_local(path, ctx, target.where)
    if not files:
        pruned = " in the window's date partitions" if source.prune_partitions else ""
        raise SourceError(f"{target.where}: no csv, parquet or jsonl files under {target.shown}"
                          f"{pruned}{target.hint}")
    if len(files) > MAX_FILES:
        raise DataError(f"{target.where}: {len(files)} files under {target.shown}, more than "
                        f"{MAX_FILES}; narrow the prefix or set prunePartitions")
    tokens = [file_version(info) for _, info in files]
    if any(tok is None for tok in tokens):
        return Listing(files, None)
    lines = "\n".join(f"{p[len(root):]}\t{tok}" for (p, _), tok in zip(files, tokens,
                                                                       strict=True))
    return Listing(files, f"files={len(files)};sha256={sha256_hex(lines)}")
