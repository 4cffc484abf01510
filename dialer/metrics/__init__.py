"""Prometheus metrics of one daemon process: counters the daemon feeds, gauges read from the store.

`registry.DialerMetrics` owns one CollectorRegistry per process (never the global default, so two
daemons in one test process do not mix). `store_gauges` computes queue depth and outbox state with
a few grouped SQL counts at scrape time. `http` serves the text format at `/metrics`.
"""
