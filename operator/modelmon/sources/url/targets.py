"""Targets of the ``url`` source: what a url names, and how to reach it.

Part of ``sources`` (second stop on the data line), first step of a ``url`` load: the url
resolved to a local path under the administrator's allowed directories (``allowed_local``)
or to a remote filesystem (http(s), s3 with the Secret's keys, gs with its service account
key), each connection held to the egress policy; ``Target`` carries it to the listing and
the readers and turns what fails there into a ``SourceError`` that quotes no credential.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import fsspec

from modelmon.api.policy import Egress
from modelmon.api.v1alpha1 import Source, parse_duration
from modelmon.sources import egress
from modelmon.sources.base import (
    LoadContext,
    MissingKeyError,
    SourceError,
    first_line,
    scrub,
)

DEFAULT_TIMEOUT = "60s"

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

    filesystem: Any
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


def unreachable(exc: BaseException) -> bool:
    """The error is the store's (or the network's), not the content's."""
    return (isinstance(exc, FileNotFoundError | PermissionError) or _status(exc) is not None
            or _rejected(exc) or _timed_out(exc) or _transient(exc))


def http_request(url: str, method: str) -> urllib.request.Request:
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
        filesystem = fsspec.filesystem(scheme, client_kwargs={"timeout": client_timeout},
                                       use_listings_cache=False, **client)
        parts = urlsplit(resolved)
        return Target(filesystem, resolved, shown, where, remote=True, prefix=False, http=True,
                      secrets=[s for s in (parts.password, parts.query) if s],
                      timeout=timeout, timeout_text=timeout_text, egress=policy)
    _import(scheme, where)
    options, secrets = (_s3_options if scheme == "s3" else _gcs_options)(
        source, ctx, where, timeout)
    try:
        filesystem = (_gcs_filesystem(options) if scheme == "gs"
                      else fsspec.filesystem(scheme, **options))
    except Exception as exc:
        raise SourceError(f"{where}: cannot set up {scheme}:// access: "
                          f"{scrub(first_line(exc), secrets)}") from None
    if scheme == "s3":
        filesystem.retries = 1  # s3fs would retry a time-out five times; ``load`` retries instead
    else:  # Google's endpoint, or the emulator the operator's environment names
        location = urlsplit(str(getattr(filesystem, "_location", ""))).hostname
        if location and ctx.policy.egress.enforce:
            egress.rules(ctx.policy.egress).check_fixed(location, where)
    path = resolved.split("://", 1)[1]
    remote_target = Target(filesystem, path.rstrip("/") if prefix else path, shown, where,
                           remote=True, prefix=prefix, secrets=secrets, timeout=timeout,
                           timeout_text=timeout_text)
    if scheme == "gs":
        _gcs_token(remote_target)
    return remote_target


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


def _gcs_token(target: Target) -> None:
    """Get (or keep) gcsfs's access token before any request.

    Inside a request gcsfs turns a refused token into a 401 that it retries six times with
    backoff; asked here, a key the token service rejects fails at once as access denied,
    and a token service that is down as a transient failure.
    """
    credentials = getattr(target.filesystem, "credentials", None)
    if credentials is None or not hasattr(credentials, "maybe_refresh"):
        return
    try:
        credentials.maybe_refresh()
    except Exception as exc:
        raise target.fail(exc.__cause__ or exc) from None
