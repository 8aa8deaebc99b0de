"""The serving worker's pure parts: request validation and incremental completion text.

No torch here, so these rules are testable without a model and shared by every engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MAX_TOKENS = 16
# OpenAI's limits for these fields (API reference, chat/completions): temperature 0..2,
# top_p 0..1, at most 4 stop sequences.
MAX_TEMPERATURE = 2.0
MAX_STOPS = 4


class RequestError(Exception):
    """A request the worker refuses: answered as {"type":"error","kind":"input"} for its id."""


@dataclass
class Request:
    id: str
    model: str
    prompt: str | None = None
    messages: list | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False


def _number(obj: dict, key: str, default, low: float, high: float, kind=float):
    value = obj.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise RequestError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if not low <= value <= high:
        raise RequestError(f"{key}={value} is out of range; use {low:g}..{high:g}")
    return kind(value)


def parse_generate(obj: dict, models: set[str]) -> Request:
    """A generate op's fields, checked; e.g. {"id":"r1","op":"generate","model":"default","prompt":"hi"}."""
    rid = str(obj["id"])
    model = obj.get("model")
    if model not in models:
        raise RequestError(f"unknown model {model!r}; this worker serves {', '.join(sorted(models))}")
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if (prompt is None) == (messages is None):
        raise RequestError("give exactly one of prompt (a string) or messages (a list of {role, content})")
    if prompt is not None and not isinstance(prompt, str):
        raise RequestError(f"prompt must be a string, got {type(prompt).__name__}")
    if messages is not None:
        if not isinstance(messages, list) or not messages:
            raise RequestError("messages must be a non-empty list of {role, content}")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise RequestError(f"messages[{i}] must be an object with string role and content, got {m!r}")
    stop = obj.get("stop")
    if stop is None:
        stops = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = list(stop)
    else:
        raise RequestError(f"stop must be a string or a list of strings, got {stop!r}")
    stops = [s for s in stops if s]
    if len(stops) > MAX_STOPS:
        raise RequestError(f"stop has {len(stops)} strings; at most {MAX_STOPS}")
    seed = obj.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(f"seed must be an integer, got {seed!r}")
    stream = obj.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(f"stream must be true or false, got {stream!r}")
    return Request(
        id=rid, model=model, prompt=prompt, messages=messages,
        max_tokens=_number(obj, "max_tokens", DEFAULT_MAX_TOKENS, 1, 1 << 20, int),
        temperature=_number(obj, "temperature", 0.0, 0.0, MAX_TEMPERATURE),
        top_p=_number(obj, "top_p", 1.0, 0.0, 1.0), seed=seed, stop=stops, stream=stream,
    )


class CompletionText:
    """Turns the decoded text of the tokens so far into safe-to-send deltas and a final text.

    `update(text)` takes the decode of all generated tokens and returns (delta, stopped):
    - a trailing U+FFFD is an incomplete UTF-8 sequence (a byte-level token split a
      character), held back until the next token completes it;
    - text is cut at the first stop string, which finishes the request with "stop";
    - a suffix that could still grow into a stop string is held back, so nothing streamed is
      ever taken back: the deltas always concatenate to the final text.
    """

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.sent = ""  # text already handed out as deltas
        self.text = ""  # the completion so far, cut at a stop string when one appeared

    def update(self, decoded: str) -> tuple[str, bool]:
        cut = min((i for i in (decoded.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.text = decoded[:cut]
            return self._advance(self.text), True
        self.text = decoded
        safe = decoded.rstrip("\ufffd")
        safe = safe[: len(safe) - self._stop_prefix_len(safe)]
        return self._advance(safe), False

    def finish(self, decoded: str | None = None) -> str:
        """The rest of the text at the end (the held-back tail; incomplete bytes stay as U+FFFD)."""
        if decoded is not None:
            self.update(decoded)
        return self._advance(self.text)

    def _advance(self, upto: str) -> str:
        # `upto` always extends `sent`: held-back text is a suffix, never an earlier part.
        if len(upto) <= len(self.sent):
            return ""
        delta, self.sent = upto[len(self.sent):], upto
        return delta

    def _stop_prefix_len(self, text: str) -> int:
        """Length of the longest suffix of text that is a proper prefix of some stop string."""
        best = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:n]):
                    best = n
                    break
        return best
