"""Infrastructure of miniplaces-report: configuration, provisioning, cache, rendering.

The analyses themselves live in the top-level ``analyses`` package; this package only feeds
them inputs and turns their results into a report.
"""
