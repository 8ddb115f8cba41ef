"""Pure numpy/scipy statistics: profiles, drift methods, performance and data quality.

Third stop on the data line: everything here takes arrays or frames and returns figures;
nothing reads files, talks to Kubernetes or judges them: thresholds, verdicts and severities
belong to ``evaluation``.
"""
