"""Alerts (issue 14): the moments a team lead must hear about, delivered by e-mail, Telegram or a webhook.

kinds.py says what each alert is and how its message reads (pure); raising.py writes an alert into the
transactional outbox in the transaction that caused it; rules.py is the rule table (who gets which
kind by which channel); dispatch.py turns pending alerts into one notice per rule, grouped and rate
limited; channels.py and worker.py deliver the notices with retries and dead letters; cli.py is
`dialer alerts`.
"""
