"""Touch chains: e-mails for the leads calls do not reach, and for customers who asked to be written to.

model.py (policy data), catalog.py (versioned YAML templates, validation, rendering), schedule.py (when
each e-mail may go out: pure), store.py (enrolments, stop conditions, the e-mail outbox topic),
mailer.py (SMTP delivery of that topic), web.py (the one-click unsubscribe page), cli.py (`dialer chains`).
"""
