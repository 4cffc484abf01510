"""Where the recorded AMI sessions of a real Asterisk 22 live: data the tests carry (tests/fixtures/ami/)."""

from pathlib import Path

AMI_RECORDINGS = Path(__file__).resolve().parent / "fixtures" / "ami"
