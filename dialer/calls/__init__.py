"""Calls in flight: the pure tracker (typed AMI events -> attempt updates) and the runner that
replays recorded AMI sessions through it."""
