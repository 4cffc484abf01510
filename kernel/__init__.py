"""The shared kernel below `leads` and `dialer`: time, the project's errors, the settings and the store.

Nothing here imports `leads` or `dialer`; both import from here.
"""
