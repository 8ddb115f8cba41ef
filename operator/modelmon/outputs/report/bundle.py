"""The plotting library a report inlines: Vega, Vega-Lite and vega-embed in one script.

Part of ``outputs.report``. The script comes from the vl-convert-python package
(``vl_convert.javascript_bundle``), which ships the three libraries and bundles them on
request; nothing is fetched from the network and no JavaScript is kept in this repository.
Bundling takes about two seconds, so the script is kept in memory for the process and on
disk under the user's cache directory (``$MODELMON_CACHE_DIR``, else
``$XDG_CACHE_HOME/modelmon``, else ``~/.cache/modelmon``), one file per vl-convert version;
a cache that cannot be read or written is skipped, never an error.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

#: What the bundle runs: it publishes vega-embed, which the report's script calls.
_SNIPPET = "window.vegaEmbed = vegaEmbed;"
#: The bundled script ends with that line; a cached file without it is damaged.
_LAST_WORDS = "window.vegaEmbed="


def cache_dir() -> Path:
    """Where the bundled script is kept between runs."""
    given = os.environ.get("MODELMON_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelmon"


def versions() -> dict[str, str]:
    """The versions of the libraries the script holds."""
    import vl_convert

    return {"vega": vl_convert.get_vega_version(),
            "vega-lite": vl_convert.get_vegalite_versions()[-1],
            "vega-embed": vl_convert.get_vega_embed_version()}


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return text if _LAST_WORDS in text[-2000:] else None


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                         prefix=".vega-", suffix=".tmp", delete=False) as out:
            out.write(text)
        os.replace(out.name, path)
    except OSError as exc:
        log.debug("not caching the plotting script in %s: %s", path.parent, exc)


def load(cache: Path | None) -> str:
    """The bundled script: read from ``cache`` (a folder) when it holds this version's,
    else bundled (and written there)."""
    import vl_convert

    version = getattr(vl_convert, "__version__", "unknown")
    digest = hashlib.sha256(_SNIPPET.encode()).hexdigest()[:8]
    path = None if cache is None else cache / f"vega-bundle-{version}-{digest}.js"
    text = None if path is None else _read(path)
    if text is None:
        text = vl_convert.javascript_bundle(_SNIPPET)
        if path is not None:
            _write(path, text)
    return text


@functools.cache
def script() -> str:
    """The Vega, Vega-Lite and vega-embed script, safe to inline in a ``<script>`` element
    (it defines ``vegaEmbed``); bundled once per process at most, and once per machine
    while the cache directory keeps it."""
    text = load(cache_dir())
    # Inline, the first "</script" would end the element; in JS "<\/" reads as "</".
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
