"""modelmon: ML model monitoring as Kubernetes custom resources.

The data line runs spec (``api``) -> data (``sources``) -> figures (``stats``) ->
findings (``evaluation``) -> status, metrics, rules and notifications (``outputs``);
``check`` runs it once and ``handlers`` adapts it to kopf.
"""

__version__ = "0.1.0"
