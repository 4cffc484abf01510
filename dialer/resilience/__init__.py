"""The daemon under faults: store outages it rides out, and the PBX's own record of calls (CDR)."""
