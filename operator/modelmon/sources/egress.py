"""Where a monitor may make the operator connect: the egress policy, checked after resolution.

Part of ``sources`` (second stop on the data line), the first stop that opens connections;
``outputs.notifiers`` uses it too (it already depends on ``sources``), so that one module
decides for every connection a monitor causes: http(s) ``url`` sources, the S3 endpoint
and the GCS token URI of a Secret, SQL hosts, Prometheus, and every notifier.

The rules come from the administrator (``Policy.egress``: ``modelmon run --egress-allow``
and ``--egress-deny``, their environment twins, the chart's ``operator.egress``). An entry
is a network in CIDR form (``10.0.0.0/8``; a bare address is one host: ``10.1.2.3``), a host
name (``prometheus.monitoring.svc``, matched case-insensitively without a trailing dot),
or ``*.`` and a suffix (``*.svc.cluster.local`` matches every name below it, not the
suffix itself). Names match the host as written in the URL; networks match the addresses
it resolves to.

A destination's host is resolved (``getaddrinfo``) and EVERY address it resolves to must
pass, otherwise the connection is refused before any byte is sent:

1. an address in a ``deny`` network, or a host that matches a ``deny`` name, is refused;
2. an address in a family refused by default (``DEFAULT_DENIED``: loopback, unspecified,
   link-local, cloud metadata) is refused unless an ``allow`` network at least as specific
   as that family contains it (``--egress-allow 169.254.0.0/16`` opens link-local but not
   the metadata address 169.254.169.254, which needs ``169.254.169.254/32``; ``0.0.0.0/0``
   opens none of them); the host name ``metadata.google.internal`` is refused unless
   allowed by name;
3. when ``allow`` is not empty, the host must match an allowed name or the address an
   allowed network.

An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, NAT64 ``64:ff9b::/96``) is checked as both. Loopback is refused by default:
in the operator's pod it is the operator itself and its sidecars (a service mesh's admin
API), never a data source.

To close the gap between the check and the connection (DNS rebinding), the clients connect
to the addresses that were checked: aiohttp through ``EgressConnector`` (its resolver step
applies the rules, and a socket factory refuses denied addresses again), urllib and smtplib
through ``create_connection`` (environment proxies are not used: a proxy would resolve the
name itself), PostgreSQL through libpq's ``hostaddr``. What is only checked before the
client connects (the client resolves again): S3 endpoints (botocore), the GCS token URI
(google-auth), and SQL databases other than PostgreSQL. A name that does not resolve
fails as it did without the policy (a transient error). Storage endpoints that the administrator
or the provider chose (S3 without an endpoint in the Secret, GCS's, or an emulator named
in the operator's environment) are refused only by a ``deny`` entry (``check_fixed``), and
the pod's own cloud credentials (instance metadata, IRSA, Workload Identity) are fetched by
the cloud libraries, outside this policy.

``Egress(enforce=False)`` (``modelmon check``) checks nothing and changes no client.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import re
import smtplib
import socket
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any
from urllib.parse import urlsplit

from modelmon.api.policy import Egress
from modelmon.sources.base import SourceError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]

#: Families of addresses refused unless an administrator allows the network explicitly.
DEFAULT_DENIED: tuple[tuple[str, IPNetwork], ...] = tuple(
    (family, ipaddress.ip_network(net)) for family, net in (
        ("loopback", "127.0.0.0/8"), ("loopback", "::1/128"),
        ("unspecified", "0.0.0.0/8"), ("unspecified", "::/128"),
        ("link-local", "169.254.0.0/16"), ("link-local", "fe80::/10"),
        ("cloud metadata", "169.254.169.254/32"),  # AWS, GCP, Azure, OpenStack, ...
        ("cloud metadata", "fd00:ec2::254/128"),  # AWS over IPv6
        ("cloud metadata", "100.100.100.200/32"),  # Alibaba Cloud
        ("cloud metadata", "168.63.129.16/32"),  # Azure WireServer
    ))
#: Host names refused unless allowed by name (their addresses are refused anyway).
DEFAULT_DENIED_NAMES = frozenset({"metadata.google.internal"})

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
                   r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
ALLOW_FLAG, DENY_FLAG = "--egress-allow", "--egress-deny"

#: No policy: every destination, clients unchanged (``modelmon check``).
UNRESTRICTED = Egress(enforce=False)

#: Resolves a host; tests replace it to make a name resolve where they need it.
getaddrinfo: Callable[..., list[AddrInfo]] = socket.getaddrinfo


class EgressRefusedError(SourceError):
    """A destination the egress policy refuses; the message names the field it came from.

    Not transient: the same policy refuses it again. Deliberately not an ``OSError``, so
    that no client library mistakes it for network trouble and retries or rewords it.
    """

    def __init__(self, where: str, destination: str, why: str) -> None:
        super().__init__(f"{where}: the operator may not connect to {destination} ({why})")
        self.where = where
        self.destination = destination
        self.why = why

    def for_field(self, where: str) -> EgressRefusedError:
        """The same refusal, naming another field."""
        return EgressRefusedError(where, self.destination, self.why)


class EgressBlockedError(OSError):
    """Raised by ``EgressConnector``'s socket factory, the second line behind its resolver
    step: an address aiohttp was about to connect to is refused (it surfaces as a
    connection error that carries this message)."""


def refusal_in(exc: BaseException | None) -> EgressRefusedError | None:
    """The ``EgressRefusedError`` that ``exc`` is, or that caused it (a client may wrap it)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, EgressRefusedError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


# ------------------------------------------------------------------------------ entries


def parse_entry(text: str) -> str:
    """One allow or deny entry, normalised (a network in CIDR form, or a lower-case name);
    ``ValueError`` says what is wrong with it."""
    entry = text.strip().lower().rstrip(".")
    if entry.startswith("[") and "]" in entry:  # [::1] or [fd00::]/8
        entry = entry[1:].replace("]", "", 1)
    if not entry:
        raise ValueError("an empty entry; give a network (10.0.0.0/8) or a host name")
    if "://" in entry:
        raise ValueError(f"{text.strip()!r} is a URL; give its host name or a network")
    if "/" in entry or ":" in entry or re.fullmatch(r"[0-9.]+", entry):
        try:
            return str(ipaddress.ip_network(entry, strict=True))
        except ValueError as exc:
            if "has host bits set" in str(exc):
                loose = ipaddress.ip_network(entry, strict=False)
                raise ValueError(f"{text.strip()!r} has host bits set; write the network "
                                 f"as {loose}") from None
            raise ValueError(f"{text.strip()!r} is not a network in CIDR form "
                             "(10.0.0.0/8, fd00::/8) or an address") from None
    if not _NAME.match(entry) or len(entry) > 253:
        raise ValueError(f"{text.strip()!r} is neither a network (10.0.0.0/8) nor a host "
                         "name (db.example.com, or *.example.com for every name below it)")
    return entry


def parse_entries(text: str) -> tuple[str, ...]:
    """Comma-separated entries (a flag's or environment variable's value), normalised."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("no entry given; give networks (10.0.0.0/8) or host names, "
                         "comma-separated")
    return tuple(parse_entry(p) for p in parts)


def _names_match(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def normalise_host(host: str) -> str:
    """A host as written in a URL, for matching: no brackets, lower case, no final dot."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.lower().rstrip(".")


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _views(address: IPAddress) -> list[IPAddress]:
    """The address, and the IPv4 address an IPv6 one carries, if any."""
    views: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        packed = int(address)
        if address.ipv4_mapped is not None:
            views.append(address.ipv4_mapped)
        elif address in _NAT64 or (packed >> 32 == 0 and packed > 1):
            views.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    return views


# -------------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Rules:
    """An ``Egress`` policy, parsed: decides on host names and addresses."""

    enforce: bool
    allow_networks: tuple[IPNetwork, ...]
    allow_names: tuple[str, ...]
    deny_networks: tuple[IPNetwork, ...]
    deny_names: tuple[str, ...]

    @property
    def allow_listed(self) -> bool:
        return bool(self.allow_networks or self.allow_names)

    def _allowed_name(self, host: str) -> bool:
        return any(_names_match(p, host) for p in self.allow_names)

    def refuse_name(self, host: str) -> str | None:
        """Why the host name (as written) is refused, or None."""
        for pattern in self.deny_names:
            if _names_match(pattern, host):
                return f"the administrator denies {pattern} with {DENY_FLAG}"
        if host in DEFAULT_DENIED_NAMES and not self._allowed_name(host):
            return (f"cloud metadata hosts are refused; an administrator can allow one by "
                    f"name with {ALLOW_FLAG}")
        return None

    def refuse_address(self, address: IPAddress, name_allowed: bool = False) -> str | None:
        """Why connecting to ``address`` is refused, or None. ``name_allowed``: the host it
        came from matches an allowed name, which lifts rule 3 (not rules 1 and 2)."""
        views = _views(address)
        for view in views:
            why = self._refuse_view(view)
            if why is not None:
                return why
        if self.allow_listed and not name_allowed and not any(
                view in net for view in views for net in self.allow_networks
                if net.version == view.version):
            return (f"it is outside the networks and hosts an administrator allows with "
                    f"{ALLOW_FLAG}")
        return None

    def _refuse_view(self, view: IPAddress) -> str | None:
        for net in self.deny_networks:
            if net.version == view.version and view in net:
                return f"the administrator denies {net} with {DENY_FLAG}"
        families = [(family, net) for family, net in DEFAULT_DENIED
                    if net.version == view.version and view in net]
        if families:
            family, net = max(families, key=lambda f: f[1].prefixlen)
            explicit = any(view in a and a.prefixlen >= net.prefixlen
                           for a in self.allow_networks if a.version == view.version)
            if not explicit:
                return (f"{family} addresses are refused by default; an administrator can "
                        f"allow the network with {ALLOW_FLAG}")
        return None

    def check(self, host: str, addresses: Iterable[str], where: str) -> None:
        """Raise ``EgressRefusedError`` unless the host name and every address pass."""
        name = normalise_host(host)
        literal = _address(name)
        why = None if literal is not None else self.refuse_name(name)
        if why is not None:
            raise EgressRefusedError(where, name, why)
        name_allowed = literal is None and self._allowed_name(name)
        for text in addresses:
            address = _address(text)
            if address is None:  # not an IP address: nothing we can vouch for
                raise EgressRefusedError(where, name, f"it resolved to {text!r}, not an address")
            why = self.refuse_address(address, name_allowed)
            if why is not None:
                shown = name if literal is not None else f"{name} ({address})"
                raise EgressRefusedError(where, shown, why)

    def resolve(self, host: str, port: int, where: str) -> list[AddrInfo]:
        """``getaddrinfo`` for a TCP connection, every result checked (``EgressRefusedError``);
        a name that does not resolve raises ``socket.gaierror``, as a client would."""
        bare = host.strip()
        if bare.startswith("[") and bare.endswith("]"):
            bare = bare[1:-1]
        infos = _stream(getaddrinfo(bare, port, type=socket.SOCK_STREAM))
        self.check(host, [str(info[4][0]) for info in infos], where)
        return infos

    async def resolve_async(self, host: str, port: int, where: str) -> list[AddrInfo]:
        """``resolve`` in the event loop's executor."""
        return await asyncio.get_running_loop().run_in_executor(
            None, partial(self.resolve, host, port, where))

    def check_fixed(self, host: str, where: str) -> None:
        """A destination an administrator or a provider chose (the cloud's storage
        endpoint, an emulator set in the operator's environment): refused only when a
        ``deny`` entry names it (its name, or the address it is written as)."""
        name = normalise_host(host)
        literal = _address(name)
        if literal is None:
            why = next((f"the administrator denies {p} with {DENY_FLAG}"
                        for p in self.deny_names if _names_match(p, name)), None)
        else:
            why = next((f"the administrator denies {n} with {DENY_FLAG}"
                        for v in _views(literal) for n in self.deny_networks
                        if n.version == v.version and v in n), None)
        if why is not None:
            raise EgressRefusedError(where, name, why)


def _stream(infos: Sequence[AddrInfo]) -> list[AddrInfo]:
    """The TCP results, without repeats, in the resolver's order."""
    out: list[AddrInfo] = []
    seen: set[tuple[Any, ...]] = set()
    for info in infos:
        key = (info[0], info[4])
        if key not in seen:
            seen.add(key)
            out.append(info)
    return out


@lru_cache(maxsize=64)
def rules(egress: Egress) -> Rules:
    """The parsed rules of a policy (``ValueError`` for an entry that is not valid)."""
    allow = [parse_entry(e) for e in egress.allow]
    deny = [parse_entry(e) for e in egress.deny]

    def nets(entries: list[str]) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.ip_network(e) for e in entries if _is_network(e))

    return Rules(enforce=egress.enforce,
                 allow_networks=nets(allow),
                 allow_names=tuple(e for e in allow if not _is_network(e)),
                 deny_networks=nets(deny),
                 deny_names=tuple(e for e in deny if not _is_network(e)))


def _is_network(entry: str) -> bool:
    return "/" in entry


def netloc_host(host: str) -> str:
    """A host as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def url_host(url: str) -> tuple[str, int] | None:
    """Host and port of an http(s) URL (port defaulted by scheme), or None without a host."""
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname, port or (443 if parts.scheme.lower() == "https" else 80)


def check_url(url: str, egress: Egress, where: str) -> None:
    """Resolve an URL's host and check it (for clients that cannot be made to connect to
    the checked address: botocore, google-auth). A host that does not resolve passes:
    the client then fails on it as before."""
    egress_rules = rules(egress)
    target = url_host(url)
    if not egress_rules.enforce or target is None:
        return
    try:
        egress_rules.resolve(*target, where)
    except OSError:
        return


# ------------------------------------------------------------ sockets: urllib, smtplib


def create_connection(egress_rules: Rules, where: str, address: tuple[str, int],
                      timeout: float | None = None,
                      source_address: tuple[str, int] | None = None) -> socket.socket:
    """``socket.create_connection`` that connects only to checked addresses."""
    host, port = address
    error: OSError | None = None
    for family, type_, proto, _, sockaddr in egress_rules.resolve(host, port, where):
        sock = socket.socket(family, type_, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"{host} resolved to no address")


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, rules: Rules, where: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = partial(create_connection, rules, where)


class _HTTPSConnection(http.client.HTTPSConnection):
    """Connects to a checked address; TLS still verifies the certificate for the name."""

    def __init__(self, *args: Any, rules: Rules, where: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = partial(create_connection, rules, where)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, egress_rules: Rules, where: str) -> None:
        super().__init__()
        self.rules, self.where = egress_rules, where

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(_HTTPConnection, rules=self.rules, where=self.where),
                            req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, egress_rules: Rules, where: str) -> None:
        super().__init__()
        self.rules, self.where = egress_rules, where

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(_HTTPSConnection, rules=self.rules, where=self.where),
                            req, context=getattr(self, "_context", None))


def urlopen(request: urllib.request.Request, timeout: float, egress: Egress,
            where: str) -> Any:
    """``urllib.request.urlopen`` under the policy: every connection, redirects included,
    goes to a checked address, and environment proxies are not used (a proxy would resolve
    the name itself). Unenforced: plain ``urlopen``."""
    egress_rules = rules(egress)
    if not egress_rules.enforce:
        return urllib.request.urlopen(request, timeout=timeout)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         _HTTPHandler(egress_rules, where),
                                         _HTTPSHandler(egress_rules, where))
    return opener.open(request, timeout=timeout)


def smtp_class(egress: Egress, where: str) -> type[smtplib.SMTP]:
    """``smtplib.SMTP``, connecting only to checked addresses (STARTTLS still verifies the
    certificate for the host name)."""
    egress_rules = rules(egress)
    if not egress_rules.enforce:
        return smtplib.SMTP

    class PinnedSMTP(smtplib.SMTP):
        def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
            source: Any = self.source_address
            return create_connection(egress_rules, where, (host, port), timeout, source)

    return PinnedSMTP


# ----------------------------------------------------------------------- aiohttp clients


def _connector_class() -> type[Any]:
    import aiohttp
    from aiohttp.abc import ResolveResult

    class EgressConnector(aiohttp.TCPConnector):
        """A ``TCPConnector`` whose resolver step checks the host and every address it
        resolves to (IP literals too, which skip aiohttp's resolver) and returns only
        those, so aiohttp connects to what was checked; its socket factory refuses denied
        addresses once more (``EgressBlockedError``)."""

        def __init__(self, egress_rules: Rules, where: str, **kwargs: Any) -> None:
            self._egress_rules, self._egress_where = egress_rules, where
            super().__init__(socket_factory=self._egress_socket, **kwargs)

        async def _resolve_host(self, host: str, port: int, traces: Any = None
                                ) -> list[ResolveResult]:
            infos = await self._egress_rules.resolve_async(host, port, self._egress_where)
            flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
            return [ResolveResult(hostname=host, host=str(sockaddr[0]), port=int(sockaddr[1]),
                                  family=family, proto=proto, flags=flags)
                    for family, _, proto, _, sockaddr in infos]

        def _egress_socket(self, addr_info: AddrInfo) -> socket.socket:
            family, type_, proto, _, sockaddr = addr_info
            address = _address(str(sockaddr[0]))
            why = (f"{sockaddr[0]!r} is not an address" if address is None
                   else self._egress_rules.refuse_address(address, name_allowed=True))
            if why is not None:
                raise EgressBlockedError(f"{self._egress_where}: the operator may not connect to "
                                         f"{sockaddr[0]} ({why})")
            return socket.socket(family, type_, proto)

    return EgressConnector


@lru_cache(maxsize=1)
def connector_class() -> type[Any]:
    """The ``aiohttp.TCPConnector`` subclass that applies a policy (aiohttp is imported
    only when an http client is needed)."""
    return _connector_class()


def client_session(egress: Egress, where: str, **kwargs: Any) -> Any:
    """An ``aiohttp.ClientSession`` under the policy (call it inside the event loop)."""
    import aiohttp

    egress_rules = rules(egress)
    if not egress_rules.enforce:
        return aiohttp.ClientSession(**kwargs)
    return aiohttp.ClientSession(connector=connector_class()(egress_rules, where), **kwargs)


@dataclass(frozen=True, slots=True)
class HttpClient:
    """fsspec's ``get_client`` for ``HTTPFileSystem``: a session under the policy. A
    frozen dataclass, so that fsspec's instance cache (keyed by the arguments' repr) gives
    one filesystem per policy and field, never another field's."""

    egress: Egress
    where: str

    async def __call__(self, **kwargs: Any) -> Any:
        return client_session(self.egress, self.where, **kwargs)
