"""The ModelMonitor API: typed models, the CRD generated from them, and error formatting.

First stop on the data line: everything after ``api`` works with validated objects.
"""
