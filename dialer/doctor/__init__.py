"""`dialer doctor`: checks a real setup (database, Asterisk, CRM) before the first call.

`checks` judges what the probes found (pure functions over plain values); `probes` asks the
database, the AMI and the CRM; `cli` prints the findings and sets the exit code.
"""
