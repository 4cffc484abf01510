"""Asterisk's manager interface (AMI): the adapter (adapter.py), typed events (events.py), the
result table (results.py), our exceptions (errors.py) and the reader of recorded sessions
(transcript.py). Nothing from panoramisk leaves this package."""
