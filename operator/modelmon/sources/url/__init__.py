"""The ``url`` source: files on a mounted volume, http(s), S3 or GCS, read through fsspec.

Part of ``sources`` (second stop on the data line).

- Schemes: a local path (no scheme, or ``file:///absolute/path``), ``http://``,
  ``https://``, ``s3://`` (or ``s3a://``) and ``gs://`` (or ``gcs://``); no other (the CRD
  and the model refuse the rest at apply, naming ``url``).
- Local paths are an administrator's grant. The operator reads a local file only when the
  path, with its symlinks and ``..`` resolved, lies under a directory given to ``modelmon
  run --allow-local-path DIR`` (repeatable; ``MODELMON_ALLOW_LOCAL_PATH``, comma-separated;
  chart value ``sources.allowLocalPaths``), and by default under none: in a pod any local
  path could be the service account's token. Every file found under a prefix is checked
  the same way. A refused path fails with ``SourceError`` naming ``url`` and the flag, the
  same whether the file exists or not. ``modelmon check`` reads any local path, as the
  person running it could.
- Byte budget: the source's ``maxBytes`` (by default, and at most, ``modelmon run
  --max-source-bytes``, 64Mi; ``MODELMON_MAX_SOURCE_BYTES``; chart ``sources.maxBytes``)
  bounds every file of the url together. A size known beforehand (a file's or object's
  size, an http(s) HEAD's Content-Length, a GET's Content-Length) over the budget is
  refused before a byte is read; otherwise the bytes are counted as they stream into the
  parser (chunked http, servers without HEAD) and the read stops at the first byte over.
  Parquet read by columns counts only the byte ranges fetched. Either way the check fails
  with ``DataError`` (InvalidData) naming ``maxBytes`` and the size seen.
- A file that does not parse is reported by what was expected, its size and the parser's
  line number; the parser's own text, which may quote the data, never reaches a message.

- ``url`` names one file, or, ending in ``/``, a prefix: every csv, parquet or jsonl file
  under it (recursively; names starting with ``_`` or ``.``, such as ``_SUCCESS``, are
  skipped), read in path order and concatenated. Every file must have the same columns
  and column kinds, or the load fails with ``DataError`` naming the file that differs.
- ``prunePartitions`` keeps, of a prefix, only the date partitions that overlap the window
  (``date=``/``dt=``/``ds=``/``day=`` with YYYY-MM-DD or YYYYMMDD, or ``year=/month=/day=``,
  optionally ``hour=`` below; partition times are UTC). Files outside any partition stay.
- Formats: csv, jsonl, parquet (only the monitored columns are read: for a remote file,
  only their byte ranges are fetched).
- ``s3://`` (s3fs, the ``s3`` extra) and ``gs://`` (gcsfs, the ``gcs`` extra) take their
  credentials from the Secret ``credentialsSecretRef`` names:

  ======================== ==============================================================
  S3 key                   meaning
  ======================== ==============================================================
  AWS_ACCESS_KEY_ID        required
  AWS_SECRET_ACCESS_KEY    required
  AWS_SESSION_TOKEN        optional, for temporary credentials
  AWS_REGION               optional
  AWS_ENDPOINT_URL         optional: an S3-compatible server (MinIO, Ceph, ...)
  GCS key                  meaning
  service-account.json     a service account key (JSON)
  ======================== ==============================================================

  Without a Secret the pod's own identity is used (IRSA, Workload Identity, the instance
  metadata), and for S3 the usual AWS_* environment variables.

The version tag (``version``, computed from ``fs.info`` or one listing, never from the
data) is built from what the store keeps per object: VersionId, generation, ETag, MD5,
Last-Modified or mtime, size and inode. An http(s) server that sends none of ETag,
Last-Modified, Content-MD5 or Digest gets a hash of the content instead (known only after
a read). Credentials and URL query strings never appear in messages.

Whole-file reads over http(s) are one streamed GET (urllib, within ``timeout`` per read);
parquet by columns uses fsspec's ranged reads.

Failures: ``timeout`` (default 60s) bounds connecting and each request to a remote server
(for gs:// also gcsfs's own retries of one request); time-outs, refused connections, HTTP
5xx and 429 are transient (``load`` retries them), while 401/403 (and rejected credentials)
say to check ``credentialsSecretRef`` and 404 says what is missing. Connections obey the
administrator's egress policy (``sources.egress``): an http(s) host, an S3 endpoint or a GCS
token URI it refuses fails at once, naming the field, before anything is sent to it.
s3fs's own retries are off, so that the retries and their backoff are ``load``'s alone.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import fsspec
import pandas as pd

from modelmon.api.policy import Egress
from modelmon.api.v1alpha1 import DataFormat, Source, parse_duration
from modelmon.sources import egress
from modelmon.sources.base import (
    CHUNK,
    Budget,
    BudgetError,
    DataError,
    LoadContext,
    Loaded,
    MissingKeyError,
    SourceError,
    budget,
    first_line,
    register,
    register_probe,
    scrub,
    unparsable,
)

SUFFIXES: dict[str, DataFormat] = {
    ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
}
DEFAULT_TIMEOUT = "60s"
MAX_FILES = 10_000
"""A prefix with more data files than this is refused (narrow it or prune partitions)."""

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_OPTIONAL_KEYS = ("AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL")
GCS_KEY = "service-account.json"
REMOTE_SCHEMES = {"http": "http", "https": "https", "s3": "s3", "s3a": "s3",
                  "gs": "gs", "gcs": "gs"}
EXTRAS = {"s3": ("s3fs", "s3"), "gs": ("gcsfs", "gcs")}


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment: safe for messages and logs."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return url
    host = egress.netloc_host(parts.hostname or "")
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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


def resolve(url: str, base_dir: Path) -> str:
    """An absolute local path, or the URL as given for a supported remote scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in REMOTE_SCHEMES:
        return url
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"a file:// url names no host ({parts.netloc!r} given); write "
                              "file:///absolute/path")
        local = unquote(parts.path)
        return local + "/" if url.endswith("/") and not local.endswith("/") else local
    if scheme and len(scheme) > 1:
        raise SourceError(
            f"url scheme {scheme!r} is not supported; use a local path, file://, http(s)://, "
            "s3://, s3a://, gs:// or gcs://")
    trailing = url.endswith("/")
    path = Path(os.path.expanduser(url))
    full = str(path if path.is_absolute() else (base_dir / path).resolve())
    return full + "/" if trailing and not full.endswith("/") else full


# ------------------------------------------------------------------------- local paths

ALLOW_FLAG = "modelmon run --allow-local-path DIR (chart value sources.allowLocalPaths)"


def allowed_local(path: str, ctx: LoadContext, where: str) -> str:
    """``path`` with its symlinks and ``..`` resolved, if that lies under a directory the
    administrator allows (``ctx.policy.local_paths``; None: any); else a SourceError that
    names the field and the flag. The answer is the same whether the file exists or not."""
    real = os.path.realpath(path)
    dirs = ctx.policy.local_paths
    if dirs is None:
        return real
    if any(Path(real).is_relative_to(d) for d in dirs):
        return real
    if not dirs:
        raise SourceError(f"{where}: this operator reads no local file, and {path} is one; "
                          f"use a remote url, or ask an administrator to allow its "
                          f"directory with {ALLOW_FLAG}")
    raise SourceError(f"{where}: {path} is outside the directories this operator may read "
                      f"({', '.join(map(str, dirs))}, symlinks resolved); move the data, or "
                      f"ask an administrator to allow its directory with {ALLOW_FLAG}")


# ------------------------------------------------------------------------- filesystems


@dataclass(slots=True)
class Target:
    """A resolved url: its filesystem, the path in it, and how to talk about it."""

    fs: Any
    path: str
    shown: str
    where: str
    remote: bool
    prefix: bool
    http: bool = False
    secrets: list[str] = field(default_factory=list)
    hint: str = ""
    timeout: float = 60.0
    """Seconds: the source's ``timeout``."""
    timeout_text: str = DEFAULT_TIMEOUT
    egress: Egress = egress.UNRESTRICTED
    """Where this url's connections may go (``LoadContext.policy.egress``)."""

    def fail(self, exc: BaseException, verb: str = "read") -> SourceError:
        """A SourceError for an exception raised while reading (or listing) the url."""
        refused = egress.refusal_in(exc)
        if refused is not None:
            return refused
        status = _status(exc)
        if isinstance(exc, FileNotFoundError) or status == 404:
            return SourceError(f"{self.where}: {self.shown} not found{self.hint}")
        if isinstance(exc, IsADirectoryError):
            return SourceError(f"{self.where}: {self.shown} is a directory; end the url with "
                               "'/' to read every file under it")
        if isinstance(exc, PermissionError) or status in (401, 403) or _rejected(exc):
            if not self.remote:
                return SourceError(f"{self.where}: permission denied to {verb} {self.shown}")
            if self.http:  # no credentialsSecretRef here: what grants access is in the url
                return SourceError(
                    f"{self.where}: access denied to {verb} {self.shown}"
                    f"{f' (HTTP {status})' if status else ''}; check that the url's user info "
                    "or signature (for a signed url: its expiry) still grants access")
            why = " (the token service refused the key)" if _rejected(exc) else ""
            return SourceError(
                f"{self.where}: access denied to {verb} {self.shown}{why}; check the "
                "credentials (credentialsSecretRef, or the pod's identity) and what they may "
                "read")
        if _timed_out(exc):
            field_ = f"{self.where.removesuffix('.url')}.timeout"
            return SourceError(
                f"{self.where}: {self.shown} did not answer within {self.timeout_text} "
                f"({field_}); check that the server is up, or raise {field_}",
                transient=True)
        detail = scrub(first_line(exc), self.secrets)
        return SourceError(f"{self.where}: cannot {verb} {self.shown}: "
                           f"{type(exc).__name__}: {detail}", transient=_transient(exc))


def _status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries: ``status`` (aiohttp, urllib), ``code`` (gcsfs's
    HttpError, urllib), or 403 for gcsfs's ``OSError("Forbidden: ...")``."""
    for name in ("status", "code"):
        value = getattr(exc, name, None)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    if type(exc) is OSError and str(exc).startswith("Forbidden"):
        return 403
    return None


def _rejected(exc: BaseException) -> bool:
    """Credentials that the token service refused (google-auth's RefreshError, when the
    service account key is unknown, disabled or malformed): not worth retrying."""
    names = [c.__name__ for c in type(exc).__mro__]
    return "RefreshError" in names and not getattr(exc, "retryable", False)


def _timed_out(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):  # urllib's URLError wraps the socket's error
        return _timed_out(reason)
    return isinstance(exc, TimeoutError) or any(
        "Timeout" in c.__name__ for c in type(exc).__mro__)


def _transient(exc: BaseException) -> bool:
    """Network trouble that may pass: time-outs, refused or reset connections, HTTP 5xx
    and 429, and tokens the token service could not issue for now."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):  # urllib's URLError wraps the socket's error
        return _transient(reason)
    status = _status(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    names = " ".join(c.__name__ for c in type(exc).__mro__)
    if "RefreshError" in names or "TransportError" in names:
        return True  # not _rejected: a retryable refresh failure, or the network
    return any(w in names for w in ("Timeout", "Connect", "Disconnected", "Endpoint"))


def _http_request(url: str, method: str) -> urllib.request.Request:
    """A request for ``url`` with its user info as a Basic header (urllib would not)."""
    parts = urlsplit(url)
    headers = {"Accept-Encoding": "identity", "User-Agent": "modelmon"}
    if parts.username or parts.password:
        basic = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    netloc = egress.netloc_host(parts.hostname or "")
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    plain = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return urllib.request.Request(plain, headers=headers, method=method)


def _http_info(url: str, timeout: float, policy: Egress = egress.UNRESTRICTED,
               where: str = "url") -> dict[str, Any]:
    """What a HEAD request tells about an http(s) file (fsspec's ``info`` turns every
    failure into FileNotFoundError, which would hide a 503 or a refused connection).
    Its connections, redirects included, obey ``policy`` (``EgressRefusedError`` names
    ``where``)."""
    parts = urlsplit(url)
    request = _http_request(url, "HEAD")
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


def _optional_secret(ctx: LoadContext, name: str, key: str) -> str | None:
    try:
        return ctx.need_resolver("").secret(name, key)
    except MissingKeyError:
        return None


def _import(scheme: str, where: str) -> None:
    module, extra = EXTRAS[scheme]
    try:
        __import__(module)
    except ImportError:
        raise SourceError(f"{where}: {scheme}:// needs the {module} package; install "
                          f"modelmon[{extra}]") from None


def _s3_options(source: Source, ctx: LoadContext, where: str, timeout: float = 60.0
                ) -> tuple[dict[str, Any], list[str]]:
    options: dict[str, Any] = {
        "use_listings_cache": False,
        "config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout,
                          "retries": {"max_attempts": 1}},
    }
    ref = source.credentials_secret_ref
    if ref is None:
        return options, []
    resolver = ctx.need_resolver(f"{where.removesuffix('.url')}.credentialsSecretRef")
    key, secret = (resolver.secret(ref.name, k) for k in S3_KEYS)
    token, region, endpoint = (_optional_secret(ctx, ref.name, k) for k in S3_OPTIONAL_KEYS)
    options.update(key=key, secret=secret, token=token)
    if region:
        options["client_kwargs"] = {"region_name": region}
    if endpoint:
        # The Secret, written by whoever writes the monitor, chooses this host: check it.
        # botocore resolves it again when it connects (see sources.egress).
        egress.check_url(endpoint, ctx.policy.egress,
                         f"{where.removesuffix('.url')}.credentialsSecretRef (Secret "
                         f"{ref.name!r} key AWS_ENDPOINT_URL)")
        options["endpoint_url"] = endpoint
    return options, [key, secret, token or ""]


def _gcs_options(source: Source, ctx: LoadContext, where: str, timeout: float = 60.0
                 ) -> tuple[dict[str, Any], list[str]]:
    import aiohttp

    # requests_timeout bounds each request; timeout the whole call, gcsfs's own retries
    # (up to six, with backoff) included, so that one attempt never outlasts the timeout.
    options: dict[str, Any] = {
        "use_listings_cache": False, "timeout": timeout,
        "requests_timeout": aiohttp.ClientTimeout(total=timeout, connect=timeout)}
    ref = source.credentials_secret_ref
    if ref is None:
        return options, []
    field_ = f"{where.removesuffix('.url')}.credentialsSecretRef"
    raw = ctx.need_resolver(field_).secret(ref.name, GCS_KEY)
    try:
        info = json.loads(raw)
    except ValueError:
        raise SourceError(f"{field_}: key {GCS_KEY} of Secret {ref.name!r} is not JSON; "
                          "put a service account key file there") from None
    if not isinstance(info, dict) or "private_key" not in info:
        raise SourceError(f"{field_}: key {GCS_KEY} of Secret {ref.name!r} is not a service "
                          "account key (no private_key)")
    token_uri = info.get("token_uri")
    if isinstance(token_uri, str):
        # google-auth posts a signed assertion to the key's token_uri: a host the
        # monitor's author chose. google-auth resolves it again when it connects.
        egress.check_url(token_uri, ctx.policy.egress,
                         f"{field_} (Secret {ref.name!r} key {GCS_KEY}, token_uri)")
    options["token"] = info
    return options, [str(info.get("private_key", "")), str(info.get("private_key_id", ""))]


def target(source: Source, ctx: LoadContext) -> Target:
    """Resolve a url source to a filesystem and a path, reading credentials if needed."""
    assert source.url is not None
    where = f"{ctx.role}.url"
    try:
        resolved = resolve(source.url, ctx.base_dir)
    except SourceError as exc:
        raise SourceError(f"{where}: {exc}") from None
    prefix = resolved.endswith("/")
    shown = redact_url(resolved)
    scheme = REMOTE_SCHEMES.get(urlsplit(resolved).scheme.lower())
    if scheme is None:
        real = allowed_local(resolved.rstrip("/") or "/", ctx, where)
        return Target(fsspec.filesystem("file"), real, shown, where,
                      remote=False, prefix=prefix,
                      hint=f" (relative paths resolve against {ctx.base_dir})")
    timeout_text = source.timeout or DEFAULT_TIMEOUT
    timeout = parse_duration(timeout_text).total_seconds()
    if scheme in ("http", "https"):
        if prefix:
            raise SourceError(f"{where}: a prefix (a url ending in '/') needs s3://, gs:// "
                              "or a local path; http(s) has no listing")
        if source.credentials_secret_ref is not None:
            raise SourceError(f"{where.removesuffix('.url')}.credentialsSecretRef: only "
                              "s3:// and gs:// urls take credentials")
        import aiohttp

        client_timeout = aiohttp.ClientTimeout(total=timeout, connect=timeout)
        policy = ctx.policy.egress
        # Under a policy, sessions connect only to checked addresses (sources.egress).
        client = {"get_client": egress.HttpClient(policy, where)} if policy.enforce else {}
        fs = fsspec.filesystem(scheme, client_kwargs={"timeout": client_timeout},
                               use_listings_cache=False, **client)
        parts = urlsplit(resolved)
        return Target(fs, resolved, shown, where, remote=True, prefix=False, http=True,
                      secrets=[s for s in (parts.password, parts.query) if s],
                      timeout=timeout, timeout_text=timeout_text, egress=policy)
    _import(scheme, where)
    options, secrets = (_s3_options if scheme == "s3" else _gcs_options)(
        source, ctx, where, timeout)
    try:
        fs = _gcs_filesystem(options) if scheme == "gs" else fsspec.filesystem(scheme, **options)
    except Exception as exc:
        raise SourceError(f"{where}: cannot set up {scheme}:// access: "
                          f"{scrub(first_line(exc), secrets)}") from None
    if scheme == "s3":
        fs.retries = 1  # s3fs would retry a time-out five times; ``load`` retries instead
    else:  # Google's endpoint, or the emulator the operator's environment names
        location = urlsplit(str(getattr(fs, "_location", ""))).hostname
        if location and ctx.policy.egress.enforce:
            egress.rules(ctx.policy.egress).check_fixed(location, where)
    path = resolved.split("://", 1)[1]
    t = Target(fs, path.rstrip("/") if prefix else path, shown, where, remote=True,
               prefix=prefix, secrets=secrets, timeout=timeout, timeout_text=timeout_text)
    if scheme == "gs":
        _gcs_token(t)
    return t


def _gcs_filesystem(options: dict[str, Any]) -> Any:
    """gcsfs's plain JSON-API filesystem.

    ``fsspec.filesystem("gs")`` is, by default since gcsfs 2026, its experimental subclass
    for zonal and hierarchical-namespace buckets, which first asks the Storage Control gRPC
    API for the bucket's layout: a further permission, another endpoint, and, when that
    call fails, a minute of retries repeated on every later call (a failed answer is not
    cached). Reading objects needs none of it.
    """
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem(**options)


def _gcs_token(t: Target) -> None:
    """Get (or keep) gcsfs's access token before any request.

    Inside a request gcsfs turns a refused token into a 401 that it retries six times with
    backoff; asked here, a key the token service rejects fails at once as access denied,
    and a token service that is down as a transient failure.
    """
    credentials = getattr(t.fs, "credentials", None)
    if credentials is None or not hasattr(credentials, "maybe_refresh"):
        return
    try:
        credentials.maybe_refresh()
    except Exception as exc:
        raise t.fail(exc.__cause__ or exc) from None


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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -------------------------------------------------------------------------- partitions

_SEGMENT = re.compile(r"^([A-Za-z_]+)=([0-9-]+)$")
_DATE_KEYS = ("date", "dt", "ds", "day")


def _parse_day(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _next_month(d: datetime) -> datetime:
    return d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)


def partition_interval(relative: str) -> tuple[datetime, datetime] | None:
    """The UTC interval ``[start, end)`` a file's partition directories cover, if any.

    ``a/date=2026-11-24/hour=07/part.parquet`` covers 07:00 to 08:00 on that day;
    ``year=2026/month=11/part.csv`` the whole month; ``part.csv`` nothing (None).
    """
    keys: dict[str, str] = {}
    for segment in relative.split("/")[:-1]:
        m = _SEGMENT.match(segment)
        if m:
            keys[m.group(1).lower()] = m.group(2)
    try:
        start: datetime | None = None
        for key in _DATE_KEYS:
            if key in keys and (day := _parse_day(keys[key])) is not None:
                start, end = day, day + timedelta(days=1)
                break
        if start is None and "year" in keys:
            start = datetime(int(keys["year"]), 1, 1, tzinfo=UTC)
            end = start.replace(year=start.year + 1)
            if "month" in keys:
                start = start.replace(month=int(keys["month"]))
                end = _next_month(start)
                if "day" in keys:
                    start = start.replace(day=int(keys["day"]))
                    end = start + timedelta(days=1)
        if start is None:
            return None
        if "hour" in keys and end - start == timedelta(days=1):
            start = start + timedelta(hours=int(keys["hour"]))
            end = start + timedelta(hours=1)
    except ValueError:  # month=13, day=32, ...: not a date partition after all
        return None
    return start, end


def _in_window(relative: str, ctx: LoadContext) -> bool:
    interval = partition_interval(relative)
    if interval is None or ctx.window_start is None or ctx.window_end is None:
        return True
    start, end = interval
    return start < ctx.window_end and end > ctx.window_start


# ---------------------------------------------------------------------------- listings


@dataclass(frozen=True, slots=True)
class Listing:
    """The data files a url names, with their metadata, and the version they make up."""

    files: list[tuple[str, Mapping[str, Any]]]
    version: str | None


def _hidden(relative: str) -> bool:
    return any(p.startswith(("_", ".")) for p in relative.split("/"))


def listing(source: Source, t: Target, ctx: LoadContext) -> Listing:
    """The files to read (one, or those under a prefix) from metadata alone."""
    try:
        if not t.prefix:
            info = (_http_info(t.path, t.timeout, t.egress, t.where) if t.http
                    else t.fs.info(t.path))
            if info.get("type") == "directory":
                raise IsADirectoryError(t.path)
            return Listing([(t.path, info)], file_version(info))
        found: dict[str, Mapping[str, Any]] = t.fs.find(t.path, detail=True)
    except SourceError:
        raise
    except Exception as exc:
        raise t.fail(exc, "list" if t.prefix else "read") from None
    root = t.path.rstrip("/") + "/"
    files: list[tuple[str, Mapping[str, Any]]] = []
    for path in sorted(found):
        relative = path[len(root):] if path.startswith(root) else path.rsplit("/", 1)[-1]
        if _hidden(relative) or found[path].get("type") == "directory":
            continue
        if source.format is None and format_of(path) is None:
            continue
        if source.prune_partitions and not _in_window(relative, ctx):
            continue
        files.append((path, found[path]))
    if not t.remote:  # a file under an allowed prefix may be a symlink out of it
        for path, _ in files:
            allowed_local(path, ctx, t.where)
    if not files:
        pruned = " in the window's date partitions" if source.prune_partitions else ""
        raise SourceError(f"{t.where}: no csv, parquet or jsonl files under {t.shown}"
                          f"{pruned}{t.hint}")
    if len(files) > MAX_FILES:
        raise DataError(f"{t.where}: {len(files)} files under {t.shown}, more than "
                        f"{MAX_FILES}; narrow the prefix or set prunePartitions")
    tokens = [file_version(info) for _, info in files]
    if any(tok is None for tok in tokens):
        return Listing(files, None)
    lines = "\n".join(f"{p[len(root):]}\t{tok}" for (p, _), tok in zip(files, tokens,
                                                                         strict=True))
    return Listing(files, f"files={len(files)};sha256={_digest(lines)}")


# ----------------------------------------------------------------------------- reading


EXPECTED: dict[DataFormat, str] = {
    "csv": "CSV text with a header row",
    "jsonl": "JSON Lines (one JSON object per line)",
    "parquet": "a parquet file",
}


class Readable(Protocol):
    """What a stream of a file's bytes needs: ``read``."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; empty at the end."""
        ...


class _Metered(io.RawIOBase):
    """A binary stream that counts what is read from it against a budget (and hashes it
    when the version must come from the content). ``seek`` is passed on for parquet."""

    def __init__(self, raw: Readable, budget_: Budget, digest: Any = None) -> None:
        super().__init__()
        self._raw: Any = raw
        self._budget = budget_
        self._digest = digest
        self.size = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(getattr(self._raw, "seekable", lambda: False)())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self._raw.tell())

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(min(len(view), CHUNK))
        n = len(data)
        view[:n] = data
        self.size += n
        if self._digest is not None:
            self._digest.update(data)
        self._budget.take(n)
        return n


class _Answer:
    """An http(s) answer's body as it arrives: each read returns what one receive brings
    (``read1``: a chunked answer is not collected to the size asked for), and a server that
    trickles is held to the timeout for the whole answer, as for one request."""

    def __init__(self, response: Any, timeout: float) -> None:
        self._response = response
        self._deadline = time.monotonic() + timeout

    def read(self, size: int = -1, /) -> bytes:
        if time.monotonic() > self._deadline:
            raise TimeoutError("the answer took longer than the timeout")
        return bytes(self._response.read1(size if size > 0 else CHUNK))


@contextmanager
def _stream(t: Target, path: str, budget_: Budget) -> Iterator[Readable]:
    """The bytes of one file as a stream; a size the server declares is refused at once
    when it is over the budget."""
    if not t.http:
        with t.fs.open(path, "rb") as handle:
            yield handle
        return
    with egress.urlopen(_http_request(path, "GET"), t.timeout, t.egress, t.where) as response:
        encoding = (response.headers.get("Content-Encoding") or "identity").lower()
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and encoding == "identity":
            budget_.declare(int(length), "Content-Length")
        answer = _Answer(response, t.timeout)
        if encoding in ("gzip", "x-gzip"):  # though asked for identity: count what it inflates to
            with gzip.GzipFile(fileobj=answer) as inflated:  # type: ignore[call-overload]
                yield inflated
        elif encoding == "identity":
            yield answer
        else:
            raise DataError(f"{t.where}: {t.shown} is sent in a Content-Encoding other than "
                            "gzip; serve it plain or gzip-encoded")


def _parse(handle: IO[bytes], fmt: DataFormat, columns: list[str] | None) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(handle)
    if fmt == "jsonl":
        return pd.read_json(handle, lines=True)
    buffer = io.BytesIO(handle.read())  # parquet needs to seek: the bytes are within budget
    return read_parquet(buffer, columns)


def read_parquet(handle: Any, columns: list[str] | None) -> pd.DataFrame:
    """A parquet file (path or open file) as a frame: ``columns`` only, when given, and
    never the pandas index pyarrow stored beside them."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(handle)
    names = parquet.schema_arrow.names
    meta = parquet.schema_arrow.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    wanted = [c for c in names if c not in index and (columns is None or c in set(columns))]
    # Column by column, each converted without a copy where pandas can share arrow's
    # buffer and kept as a block of its own: the read never holds the window twice.
    data = {name: parquet.read(columns=[name]).column(0).to_pandas(split_blocks=True)
            for name in wanted}
    return pd.DataFrame(data, copy=False)


class _NoRangesError(Exception):
    """The http(s) server ignores Range requests: the file can only be read whole."""


def _parquet_columns(t: Target, path: str, columns: list[str] | None,
                     budget_: Budget) -> pd.DataFrame:
    # No read-ahead cache for a remote file: each read pyarrow makes (the footer, then one
    # column chunk at a time) is one ranged request, so only the monitored columns travel,
    # and only they count against the budget.
    with t.fs.open(path, "rb", **({"cache_type": "none"} if t.remote else {})) as handle:
        try:
            return read_parquet(_Metered(handle, budget_), columns)
        except ValueError as exc:
            if t.http and "range" in str(exc).lower():
                raise _NoRangesError from None
            raise


def _unreachable(exc: BaseException) -> bool:
    """The error is the store's (or the network's), not the content's."""
    return (isinstance(exc, FileNotFoundError | PermissionError) or _status(exc) is not None
            or _rejected(exc) or _timed_out(exc) or _transient(exc))


def _read_file(t: Target, path: str, fmt: DataFormat, columns: list[str] | None,
               content_hash: bool, budget_: Budget) -> tuple[pd.DataFrame, str | None]:
    shown = t.shown if not t.prefix else f"{t.shown}{path[len(t.path.rstrip('/')) + 1:]}"
    if fmt == "parquet" and not content_hash:
        used = budget_.used
        try:
            return _parquet_columns(t, path, columns, budget_), None
        except _NoRangesError:
            budget_.used = used  # one whole download below, counted afresh
        except BudgetError:
            raise
        except Exception as exc:
            if _unreachable(exc):
                raise t.fail(exc) from None
            raise DataError(f"{t.where}: " + unparsable(
                shown, fmt, EXPECTED[fmt], budget_.used - used, exc)) from None
    digest = hashlib.sha256() if content_hash else None
    metered: _Metered | None = None
    try:
        with _stream(t, path, budget_) as raw:
            metered = _Metered(raw, budget_, digest)
            frame = _parse(io.BufferedReader(metered, CHUNK), fmt, columns)
    except (DataError, SourceError):
        raise
    except Exception as exc:
        inner = exc.__context__  # raised inside the parser's read, and wrapped by it
        if isinstance(inner, BudgetError):
            raise inner from None
        if isinstance(inner, TimeoutError):
            exc = inner
        if metered is None or _unreachable(exc):
            raise t.fail(exc) from None
        raise DataError(f"{t.where}: " + unparsable(shown, fmt, EXPECTED[fmt], metered.size,
                                                   exc)
                        ) from None
    return frame, None if digest is None else "sha256=" + digest.hexdigest()


def _kind_of(series: pd.Series) -> str | None:
    if series.isna().all():
        return None
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    return "text"


def _same_schema(t: Target, frames: list[tuple[str, pd.DataFrame]]) -> None:
    """Every file of a prefix has the first file's columns, of the same kinds."""
    first_path, first = frames[0]
    kinds = {c: _kind_of(first[c]) for c in first.columns}
    for path, frame in frames[1:]:
        missing = [c for c in first.columns if c not in frame.columns]
        extra = [c for c in frame.columns if c not in first.columns]
        if missing or extra:
            said = "; ".join(s for s in (
                f"lacks {', '.join(map(str, missing))}" if missing else "",
                f"adds {', '.join(map(str, extra))}" if extra else "") if s)
            raise DataError(f"{t.where}: the schema changed under {t.shown}: {path} {said} "
                            f"compared with {first_path}; rewrite the files or narrow the "
                            "prefix")
        for column in first.columns:
            kind = _kind_of(frame[column])
            if kind is not None and kinds[column] is not None and kind != kinds[column]:
                raise DataError(
                    f"{t.where}: the schema changed under {t.shown}: column {column!r} "
                    f"holds {kind} values in {path} but {kinds[column]} in {first_path}")
            kinds[column] = kinds[column] or kind


def _declared_size(info: Mapping[str, Any]) -> int | None:
    size = info.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _read_all(source: Source, t: Target, files: Listing, ctx: LoadContext
              ) -> tuple[pd.DataFrame, str]:
    columns = list(ctx.columns) if ctx.columns is not None else None
    budget_ = budget(source, ctx)
    hash_content = files.version is None
    frames: list[tuple[str, pd.DataFrame]] = []
    digests: list[str] = []
    formats = {detect_format(p, source.format) for p, _ in files.files}
    if len(formats) > 1:
        raise DataError(f"{t.where}: {t.shown} holds {', '.join(sorted(formats))} files; "
                        "set format to read only one kind")
    fmt = formats.pop()
    if fmt != "parquet" or hash_content:  # parquet by columns reads less than its size
        sizes = [_declared_size(info) for _, info in files.files]
        known = sum(s for s in sizes if s is not None)
        said = "Content-Length" if t.http else "size"
        budget_.declare(known, said if len(sizes) == 1 else
                        f"{len(sizes)} files, {said} together")
    for path, _ in files.files:
        frame, digest = _read_file(t, path, fmt, columns, hash_content, budget_)
        frames.append((path, frame))
        if digest is not None:
            digests.append(digest)
    if len(frames) > 1:
        _same_schema(t, frames)
    frame = frames[0][1] if len(frames) == 1 else pd.concat(
        [f for _, f in frames], ignore_index=True)
    version = files.version or ("sha256:" + _digest("\n".join(digests)))
    return frame, version


@register("url")
def load_url(source: Source, ctx: LoadContext) -> Loaded:
    """Read the file, or every file under the prefix, that a ``url`` source names."""
    t = target(source, ctx)
    if not t.prefix:
        try:
            detect_format(t.path, source.format)
        except DataError as exc:
            raise DataError(f"{t.where}: {exc}") from None
    files = listing(source, t, ctx)
    frame, version = _read_all(source, t, files, ctx)
    if frame.columns.empty:
        raise DataError(f"{t.where}: {t.shown} has no columns")
    return Loaded(frame=frame, version=version)


@register_probe("url")
def probe_url(source: Source, ctx: LoadContext) -> str | None:
    """The version from metadata alone (one ``info`` or one listing); no data is read."""
    t = target(source, ctx)
    return listing(source, t, ctx).version
