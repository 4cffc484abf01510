"""`dialer zones`: the numbering plan behind the lead's own clock (issue 12)."""
