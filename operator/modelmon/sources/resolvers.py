"""Resolvers: where sources get Secrets and ConfigMaps, with or without a cluster.

Part of ``sources`` (second stop on the data line). Loaders see only the ``Resolver``
protocol of ``sources.base``; these are its two implementations.

``KubeResolver`` (the operator) reads Secrets and ConfigMaps of the monitor's namespace
through the API server (the operator's service account needs ``get`` on both). Each object
is read once per resolver: make one resolver per check, so a rotated Secret is seen at the
next check.

It uses only objects that carry the administrator's opt-in label (``Policy.use_label``,
``modelmon.io/use: "true"``). The operator reads with its own identity on behalf of
whoever wrote the monitor, who may not be allowed to read that Secret: without the label,
a monitor could point ``connectionSecretRef`` at another application's database URL and
query that database with its credentials (a confused deputy). The label is the Secret
owner's consent. An object without it gets the same message as one that does not exist,
naming both fixes, so that a monitor learns nothing about the namespace's Secrets that it
could not learn before (not even which names exist); nothing of a refused object (keys,
values, other labels) is kept or shown.

``LocalResolver`` (``modelmon check``, no cluster):

- Secrets, first match wins:

  1. ``--secret NAME/KEY=VALUE`` (``--secret NAME/KEY=@FILE`` reads the value from a file,
     which keeps it out of the shell history);
  2. the environment variable ``MODELMON_SECRET_<NAME>_<KEY>``: name and key upper-cased,
     every character other than A-Z and 0-9 replaced by ``_``; for example Secret
     ``predictions-db`` key ``url`` is ``MODELMON_SECRET_PREDICTIONS_DB_URL``.

- ConfigMaps: YAML documents of ``kind: ConfigMap`` in the monitor file itself and in the
  other ``*.yaml``/``*.yml`` files of its directory (not below it), matched by
  ``metadata.name`` (namespaces are ignored); the monitor file wins, then files in name
  order. ``data`` and ``binaryData`` (base64) are both read. Files that are not YAML, or
  hold no ConfigMap, are passed over.

Values never appear in messages: errors name the Secret or ConfigMap, the key, and the
keys that do exist.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelmon.api.policy import USE_LABEL
from modelmon.sources.base import MissingKeyError, SourceError

ENV_PREFIX = "MODELMON_SECRET_"


def _decode(encoded: str, what: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise SourceError(f"{what} is not base64-encoded UTF-8 text") from None


def _keys(data: Mapping[str, Any]) -> str:
    return ", ".join(sorted(data)) or "none"


# ------------------------------------------------------------------------------ cluster


class KubeResolver:
    """Reads the Secrets and ConfigMaps of one namespace through a ``CoreV1Api``; with
    ``use_label`` (the default) only those labeled ``use_label: "true"``."""

    def __init__(self, core_v1_api: Any, namespace: str,
                 use_label: str | None = USE_LABEL) -> None:
        self.api = core_v1_api
        self.namespace = namespace
        self.use_label = use_label
        self._secrets: dict[str, dict[str, str]] = {}
        self._config_maps: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self.reads = 0
        """API requests made (for tests)."""

    def _read(self, kind: str, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        where = f"{kind} {self.namespace}/{name}"
        read = (self.api.read_namespaced_secret if kind == "Secret"
                else self.api.read_namespaced_config_map)
        self.reads += 1
        try:
            obj = read(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                if self.use_label is not None:
                    raise self._not_usable(kind, name) from None
                raise SourceError(f"{where} not found; create it in the monitor's "
                                  "namespace") from None
            if exc.status in (401, 403):
                plural = "secrets" if kind == "Secret" else "configmaps"
                raise SourceError(f"the operator may not read {where}: grant its service "
                                  f"account get on {plural}") from None
            raise SourceError(f"cannot read {where}: HTTP {exc.status} {exc.reason}",
                              transient=exc.status is None or exc.status >= 500) from None
        except Exception as exc:  # urllib3 connection errors and the like
            raise SourceError(f"cannot read {where}: {type(exc).__name__}",
                              transient=True) from None
        if self.use_label is not None:
            labels = (obj.metadata.labels if obj.metadata is not None else None) or {}
            if labels.get(self.use_label) != "true":
                raise self._not_usable(kind, name)
        return obj

    def _not_usable(self, kind: str, name: str) -> SourceError:
        """Missing or not labeled: one message for both (see the module doc)."""
        noun = kind.lower()
        return SourceError(
            f"{kind} {self.namespace}/{name} does not exist or is not labeled "
            f"{self.use_label}=true, which a {kind} needs before monitors may use it; create "
            f"it in the monitor's namespace with that label, or have its owner label it: "
            f"kubectl label {noun} -n {self.namespace} {name} {self.use_label}=true")

    def secret(self, name: str, key: str) -> str:
        """The value of ``key`` in Secret ``name`` (one trailing newline dropped)."""
        data = self._secrets.get(name)
        if data is None:
            obj = self._read("Secret", name)
            data = dict(obj.data or {})
            self._secrets[name] = data
        if key not in data:
            raise MissingKeyError(f"Secret {self.namespace}/{name} has no key {key!r} "
                                  f"(its keys: {_keys(data)})")
        value = _decode(data[key], f"key {key!r} of Secret {self.namespace}/{name}")
        return value.removesuffix("\n").removesuffix("\r")

    def config_map(self, name: str, key: str) -> str:
        """The value of ``key`` in ConfigMap ``name`` (``data``, else ``binaryData``)."""
        cached = self._config_maps.get(name)
        if cached is None:
            obj = self._read("ConfigMap", name)
            cached = (dict(obj.data or {}), dict(obj.binary_data or {}))
            self._config_maps[name] = cached
        data, binary = cached
        if key in data:
            return data[key]
        if key in binary:
            return _decode(binary[key], f"key {key!r} of ConfigMap {self.namespace}/{name}")
        raise MissingKeyError(f"ConfigMap {self.namespace}/{name} has no key {key!r} "
                              f"(its keys: {_keys({**data, **binary})})")


# -------------------------------------------------------------------------------- local


def env_name(name: str, key: str) -> str:
    """The environment variable that holds Secret ``name`` key ``key`` for LocalResolver."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", f"{name}_{key}".upper())


def parse_secret_arg(text: str, base_dir: Path | None = None) -> tuple[tuple[str, str], str]:
    """``NAME/KEY=VALUE`` (or ``NAME/KEY=@FILE``) -> ``((name, key), value)``.

    Raises ValueError with a message that shows the NAME/KEY part only.
    """
    ref, sep, value = text.partition("=")
    name, slash, key = ref.partition("/")
    if not sep or not slash or not name or not key:
        raise ValueError(f"--secret {ref.split('=')[0]!r}: write NAME/KEY=VALUE or "
                         "NAME/KEY=@FILE")
    if value.startswith("@"):
        path = Path(value[1:])
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            value = path.read_text()
        except OSError as exc:
            raise ValueError(f"--secret {ref}: cannot read {path}: {exc.strerror}") from None
        value = value.removesuffix("\n")
    return (name, key), value


@dataclass(frozen=True, slots=True)
class _ConfigMap:
    data: dict[str, str]
    binary: dict[str, str]
    file: Path


class LocalResolver:
    """Secrets from flags and the environment, ConfigMaps from YAML files (no cluster)."""

    def __init__(self, secrets: Mapping[tuple[str, str], str] | None = None, *,
                 env: Mapping[str, str] | None = None,
                 config_map_files: Iterable[Path] = ()) -> None:
        self.secrets = dict(secrets or {})
        self.env = os.environ if env is None else env
        self.files = list(config_map_files)
        self._config_maps: dict[str, _ConfigMap] | None = None

    @classmethod
    def for_monitor(cls, monitor: Path, secret_args: Iterable[str] = (), *,
                    env: Mapping[str, str] | None = None) -> LocalResolver:
        """The resolver ``modelmon check MONITOR --secret ...`` uses (see the module doc)."""
        monitor = monitor.resolve()
        here = Path.cwd()
        secrets = dict(parse_secret_arg(a, here) for a in secret_args)
        siblings = sorted(p for p in monitor.parent.iterdir()
                          if p.suffix in (".yaml", ".yml") and p.is_file() and p != monitor)
        return cls(secrets, env=env, config_map_files=[monitor, *siblings])

    def secret(self, name: str, key: str) -> str:
        """The value from ``--secret`` or the environment."""
        value = self.secrets.get((name, key))
        if value is None:
            value = self.env.get(env_name(name, key))
        if value is None:
            raise MissingKeyError(f"Secret {name!r} key {key!r} is not set: pass --secret "
                                  f"{name}/{key}=VALUE or set {env_name(name, key)}")
        return value

    def _scan(self) -> dict[str, _ConfigMap]:
        if self._config_maps is not None:
            return self._config_maps
        found: dict[str, _ConfigMap] = {}
        for path in self.files:
            try:
                docs = list(yaml.safe_load_all(path.read_text()))
            except (OSError, yaml.YAMLError, UnicodeDecodeError):
                continue
            for doc in docs:
                if not isinstance(doc, dict) or doc.get("kind") != "ConfigMap":
                    continue
                name = (doc.get("metadata") or {}).get("name")
                if isinstance(name, str) and name not in found:
                    found[name] = _ConfigMap(
                        {str(k): str(v) for k, v in (doc.get("data") or {}).items()},
                        {str(k): str(v) for k, v in (doc.get("binaryData") or {}).items()},
                        path)
        self._config_maps = found
        return found

    def config_map(self, name: str, key: str) -> str:
        """The value of ``key`` in the ConfigMap ``name`` found in the YAML files."""
        config_map = self._scan().get(name)
        if config_map is None:
            where = (f"{self.files[0].name} or the other YAML files in {self.files[0].parent}"
                     if self.files else "no YAML files")
            raise SourceError(f"ConfigMap {name!r} not found in {where}; add a document "
                              "of kind ConfigMap with that metadata.name")
        if key in config_map.data:
            return config_map.data[key]
        if key in config_map.binary:
            return _decode(config_map.binary[key],
                           f"key {key!r} of ConfigMap {name!r} ({config_map.file})")
        raise MissingKeyError(f"ConfigMap {name!r} in {config_map.file} has no key {key!r} "
                              f"(its keys: {_keys({**config_map.data, **config_map.binary})})")
