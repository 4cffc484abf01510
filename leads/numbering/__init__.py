"""Russia's numbering plan: which region, operator and time zones an allocated number range belongs to."""
