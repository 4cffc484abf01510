"""The short WAV the simulated PBX writes for a connected call (MixMonitor's file, 8 kHz mono 16-bit)."""

from __future__ import annotations

import math
import os
import struct
import wave
from pathlib import Path

RATE = 8000
MAX_SECONDS = 10.0
MIN_SECONDS = 1.5          # long enough for a player to play a first second


def write_call_wav(path: str | Path, talk_seconds: float, tone_hz: float = 440.0) -> Path:
    """A tone as long as the talk (clamped to 1.5..10 s), written to a temporary name then renamed, as a
    finished recording appears whole."""
    seconds = min(MAX_SECONDS, max(MIN_SECONDS, talk_seconds))
    frames = int(RATE * seconds)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    samples = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * tone_hz * i / RATE)))
                       for i in range(frames))
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples)
    os.replace(tmp, target)
    return target
