"""Outputs: where a check's status goes. Last stop on the data line.

``publisher`` (writes each check's outputs: the status patch, the rule, notifications,
retraining, Events, metrics), ``metrics`` (Prometheus exposition), ``rules`` (the generated
PrometheusRule), ``notifiers`` (the delivery lanes), ``retraining`` (the Job hook),
``cluster`` (the Kubernetes calls they make, as a protocol) and ``kube`` (those calls against
an API server).
"""
