"""modelmon: ML model monitoring as Kubernetes custom resources.

The data line runs spec (``api``) -> data (``sources``) -> figures (``stats``) ->
findings (``evaluation``) -> status, metrics, rules and notifications (``outputs``);
``check`` runs it once and ``handlers`` adapts it to kopf.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modelmon")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"
