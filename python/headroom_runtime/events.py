"""The trainer's event stream: one JSON object per line on stdout (DESIGN.md §2.2).

The TypeScript side owns the schema (src/runtime/events.ts, zod); python/tests check these
lines against it. Byte counts are bytes, `t` is Unix epoch milliseconds. Logs go to stderr,
so stdout carries only events.
"""
from __future__ import annotations

import json
import math
import sys
import time


def emit(type_: str, **fields) -> dict:
    """Writes one event line, e.g. `emit("checkpoint", step=10, path="/out/checkpoint-10")`.

    Top-level None fields are left out (optional in the schema); nested None stays null.
    """
    event = {"type": type_, "t": int(time.time() * 1000), **{k: _plain(v) for k, v in fields.items() if v is not None}}
    sys.stdout.write(json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n")
    sys.stdout.flush()
    return event


def log(message: str) -> None:
    """A human-readable log line (stderr; the supervisor passes it through)."""
    sys.stderr.write(f"headroom: {message}\n")
    sys.stderr.flush()


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
