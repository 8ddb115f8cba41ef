"""Outputs: where a check's status goes. Last stop on the data line.

``status`` (the status patch), ``metrics`` (Prometheus exposition), ``rules`` (the generated
PrometheusRule), ``kube`` (the Kubernetes API calls that write them) and events.
"""
