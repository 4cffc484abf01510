"""The call policy (DESIGN §3): which lead to dial next, and why any lead is or is not dialable now.

Pure rules over frozen data, one module per rule (values, tiers, quiet_hours, zones, retry, cadence,
callbacks, distribution, sla), composed in why.evaluate and ordered by selector. The database side:
store (versioned policy), candidates (SQL prefilter), claim (the atomic claim), results (results
back from the dialer), queue (read-only views).
"""
