"""Sources: load the reference data and the current window as pandas DataFrames.

Second stop on the data line: a registry maps each kind of ``spec.*.source`` to a loader
(``url``: files on volumes, http(s), S3, GCS; ``sql``; ``configMap``; ``prometheus`` for
operational figures); loaders raise ``SourceError`` (unreachable, missing, forbidden, too
slow) or ``DataError`` (unreadable, wrong shape, bad query) with messages that say what to
fix and never contain credentials. Secrets and ConfigMaps come through a ``Resolver``
(``resolvers``); ``version`` probes a source cheaply and ``ReferenceCache`` (``cache``)
uses it to reuse a fitted reference until its data changes, within a byte budget
(``estimated_bytes`` sizes each value).

Optional dependencies are imported when a source needs them: s3fs (``modelmon[s3]``),
gcsfs (``modelmon[gcs]``), SQLAlchemy and psycopg (``modelmon[sql]``).
"""

from modelmon.sources.base import (
    DataError,
    LoadContext,
    Loaded,
    MissingKeyError,
    Resolver,
    SourceError,
    Stream,
    load,
    open_stream,
    source_kinds,
    version,
)
from modelmon.sources.cache import Cached, ReferenceCache, estimated_bytes

__all__ = [
    "Cached",
    "DataError",
    "LoadContext",
    "Loaded",
    "MissingKeyError",
    "ReferenceCache",
    "Resolver",
    "SourceError",
    "Stream",
    "estimated_bytes",
    "load",
    "open_stream",
    "source_kinds",
    "version",
]

# Loaders register themselves on import.
from modelmon.sources import configmap as _configmap  # noqa: F401
from modelmon.sources import prometheus as _prometheus  # noqa: F401
from modelmon.sources import sql as _sql  # noqa: F401
from modelmon.sources import url as _url  # noqa: F401
