"""Housekeeping: retention of sent outbox rows, old attempts' event logs and export files.

`rules`: the cutoffs and which export files are old (pure, `now` passed in); `prune`: counting and
deleting in the store and the export folder, in batches; `cli`: `dialer prune [--dry-run]`.
"""
