"""Outbound call-center dialer: runtime, infrastructure and the PBX side."""
