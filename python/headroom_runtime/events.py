"""The trainer's event stream: one JSON object per line on stdout (DESIGN.md §2.2).

The TypeScript side owns the schema (src/runtime/events.ts, zod); python/tests check these
lines against it. Byte counts are bytes, `t` is Unix epoch milliseconds. Logs go to stderr,
so stdout carries only events.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

_reader_gone = False
_rank: int | None = None  # set under torchrun (_distributed.World): every event then carries `rank`


def set_rank(rank: int | None) -> None:
    global _rank
    _rank = rank


def emit(type_: str, **fields) -> dict:
    """Writes one event line, e.g. `emit("checkpoint", step=10, path="/out/checkpoint-10")`.

    Top-level None fields are left out (optional in the schema); nested None stays null.
    """
    global _reader_gone
    event = {"type": type_, "t": int(time.time() * 1000), **{k: _plain(v) for k, v in fields.items() if v is not None}}
    if _rank is not None:
        event["rank"] = _rank
    if _reader_gone:
        return event
    try:
        sys.stdout.write(json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The supervisor is gone (killed): keep training state intact and let the recipe stop
        # with a checkpoint; further events have no reader. Point stdout at /dev/null so the
        # interpreter's own flush at exit does not fail too.
        _reader_gone = True
        sys.stdout = open(os.devnull, "w")
    return event


def reader_gone() -> bool:
    """True once an event could not be written because nobody reads stdout any more."""
    return _reader_gone


def log(message: str) -> None:
    """A human-readable log line (stderr; the supervisor passes it through)."""
    try:
        # Rank 0 speaks for the run; the others' lines are tagged (headroom tune shows them with --verbose).
        sys.stderr.write(f"headroom: {message}\n" if not _rank else f"headroom[rank {_rank}]: {message}\n")
        sys.stderr.flush()
    except BrokenPipeError:  # the supervisor is gone; see emit()
        sys.stderr = open(os.devnull, "w")


def _plain(value):
    # JSON has no NaN/inf; a diverged loss is reported as a huge finite number rather than
    # breaking the stream (the zod schema requires numbers).
    if isinstance(value, float) and not math.isfinite(value):
        return 1e308 if value > 0 or math.isnan(value) else -1e308
    if isinstance(value, dict):  # nested nulls are meaningful (e.g. summary.lastLoss: null)
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class InputError(Exception):
    """Bad input from the user: becomes an `error` event (kind, message, path) and exit 1."""

    def __init__(self, kind: str, message: str, path: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.path = kind, message, path
