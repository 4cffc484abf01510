"""`dialer simulate` (issue 15): a whole day of the product's own decisions on a virtual clock, in seconds.

inputs.py reads what the day is given (lead arrivals by an hourly profile or from a CSV, operators by
shift); customers.py models the PBX side (customers' answers, talk and wrap-up: pure, seeded);
strategies.py names what is compared (a policy and a way to choose the next call: the product's claim
or the VICIdial-style hopper baseline; progressive or predictive pacing); pacing.py is predictive pacing
with its abandon budget (pure); day.py runs one day on a temporary store with the product's intake,
claim and result recording; kpis.py turns the store's end-of-day rows into the KPIs; plot.py draws them;
calibrate.py fits the customer figures from a store's own calls (--calibrate); history.py reads a store's
own leads as the arrivals (--from-db); cli.py is `dialer simulate`.
"""
