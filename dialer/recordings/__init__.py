"""Call recordings (issue 14): MixMonitor's `<attempt id>.wav` files, their links, serving and retention.

- `files`: the file name of an attempt's recording, where it lives, and the retention rule (which files
  are older than N days) with the pruning at the edge;
- `links`: the URL the CRM payload and the nightly file carry;
- `wav`: the short WAV the simulated PBX writes for connected calls (so the path runs in tests);
- `cli`: `dialer recordings prune|where`.
"""
