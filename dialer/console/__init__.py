"""The operator web console (DESIGN §7), served by the daemon.

- auth.py: password hashes (scrypt), the team lead's password, signed session cookies;
- hub.py: screen pops from the daemon to the open console pages (in-process publish/subscribe);
- switchboard.py: operators' live states and pause / resume (QueuePause through AMI), plus a fake;
- cards.py: the call card (lead, earlier calls and dispositions, the script for this contact);
- teamlead.py: the team lead's view (queue head, operators, calls in progress, SLA risks);
- pages.py: the HTML (templates in dialer/web/templates, static files in dialer/web/static);
- routes.py: the FastAPI router (`Console(...).router`) with the pages, the JSON API and the SSE stream.
"""
