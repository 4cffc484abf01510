"""What a lead is and what may happen to it: phones, dedup, DNC, intake, call policy."""
