"""kopf adapters: the only package that imports kopf.

Thin handlers turn kopf's causes into calls on the ``worker.Fleet`` (monitor events) and
set up the operator's settings, heartbeat and shutdown (lifecycle). Importing this package
registers the handlers with kopf's default registry.
"""

from modelmon.handlers import lifecycle, monitor

__all__ = ["lifecycle", "monitor"]
