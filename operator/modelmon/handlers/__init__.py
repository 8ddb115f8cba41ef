"""kopf adapters: the only package that imports kopf.

Thin handlers turn kopf's causes into calls on the ``worker.Fleet`` (monitor events), and
run kopf with the operator's settings, start the heartbeat (``modelmon.health``) and shut
down (lifecycle). Importing this package registers the handlers with kopf's default registry.
"""

from modelmon.handlers import lifecycle, monitor

__all__ = ["lifecycle", "monitor"]
