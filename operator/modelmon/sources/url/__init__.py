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
- Streamed reads (``streamed``; ``stream_url``, registered with ``register_stream``): a
  window larger than the check's memory limit is read in batches, parquet one row group at
  a time (only the asked columns' ranges fetched), CSV in chunks of rows by pandas' parser,
  as a whole load parses it. The same target, listing, allowed paths, egress and timeout
  apply; the byte budget counts the bytes each pass fetches (``maxBytes`` is bytes
  fetched, not bytes held: the memory limit, ``streaming``, bounds what is held). JSON
  Lines, and files whose version only their content tells, are read whole.
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

The package follows a load's steps: ``targets`` (the url resolved, local paths checked
against the allowed directories, credentials and egress set up for s3/gs/http),
``listing`` (the files and their version, from metadata alone; ``partitions`` prunes date
partitions outside the window), ``readers`` (bytes within budget, parsed and checked for
one schema), or ``streamed`` (the same bytes in batches; ``aggregated``: those batches
aggregated by DuckDB, ``engine: duckdb``). This module registers the loader,
the version probe and the streamer.
"""

from __future__ import annotations

from modelmon.api.v1alpha1 import Source
from modelmon.sources.base import (
    DataError,
    LoadContext,
    Loaded,
    register,
    register_probe,
    register_stream,
)
from modelmon.sources.url.listing import (
    MAX_FILES,
    SUFFIXES,
    Listing,
    detect_format,
    file_version,
    format_of,
    listing,
)
from modelmon.sources.url.partitions import partition_interval
from modelmon.sources.url.readers import EXPECTED, Readable, read_all, read_parquet
from modelmon.sources.url.streamed import STREAMED_FORMATS, Streamed, open_streamed
from modelmon.sources.url.targets import (
    ALLOW_FLAG,
    DEFAULT_TIMEOUT,
    EXTRAS,
    GCS_KEY,
    REMOTE_SCHEMES,
    S3_KEYS,
    S3_OPTIONAL_KEYS,
    Target,
    allowed_local,
    redact_url,
    resolve,
    target,
)

__all__ = [
    "ALLOW_FLAG",
    "DEFAULT_TIMEOUT",
    "EXPECTED",
    "EXTRAS",
    "GCS_KEY",
    "MAX_FILES",
    "REMOTE_SCHEMES",
    "S3_KEYS",
    "S3_OPTIONAL_KEYS",
    "STREAMED_FORMATS",
    "SUFFIXES",
    "Listing",
    "Readable",
    "Streamed",
    "Target",
    "allowed_local",
    "detect_format",
    "file_version",
    "format_of",
    "listing",
    "load_url",
    "partition_interval",
    "probe_url",
    "read_parquet",
    "redact_url",
    "resolve",
    "stream_url",
    "target",
]


@register("url")
def load_url(source: Source, ctx: LoadContext) -> Loaded:
    """Read the file, or every file under the prefix, that a ``url`` source names."""
    resolved = target(source, ctx)
    if not resolved.prefix:
        try:
            detect_format(resolved.path, source.format)
        except DataError as exc:
            raise DataError(f"{resolved.where}: {exc}") from None
    files = listing(source, resolved, ctx)
    frame, version = read_all(source, resolved, files, ctx)
    if frame.columns.empty:
        raise DataError(f"{resolved.where}: {resolved.shown} has no columns")
    return Loaded(frame=frame, version=version)


@register_probe("url")
def probe_url(source: Source, ctx: LoadContext) -> str | None:
    """The version from metadata alone (one ``info`` or one listing); no data is read."""
    resolved = target(source, ctx)
    return listing(source, resolved, ctx).version


@register_stream("url")
def stream_url(source: Source, ctx: LoadContext) -> Streamed | None:
    """The file, or the files under the prefix, opened for streamed reads (``streamed``);
    None for JSON Lines, or when only the content would tell the version."""
    resolved = target(source, ctx)
    if not resolved.prefix:
        try:
            detect_format(resolved.path, source.format)
        except DataError as exc:
            raise DataError(f"{resolved.where}: {exc}") from None
    return open_streamed(source, resolved, listing(source, resolved, ctx), ctx)
