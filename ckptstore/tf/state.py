"""TensorFlow's ``checkpoint`` state file, written and read by the protobuf text-format rules.

``tf.train.latest_checkpoint(dir)`` reads a ``CheckpointState`` message in text format::

    model_checkpoint_path: "model.ckpt-1000"
    all_model_checkpoint_paths: "model.ckpt-1000"

Strings there are C-escaped (quotes, backslashes, control characters, and non-ASCII bytes as
octal escapes), exactly as protobuf's ``CEscape`` writes them and its text parser reads them. This
module does both without importing TensorFlow or protobuf, so ``restore --to`` and ``import``
stay light; a test checks the output with TensorFlow's own reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STATE_FILE = "checkpoint"

_SIMPLE = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "'": "\\'", "\\": "\\\\"}
_UNESCAPE = {"n": 10, "r": 13, "t": 9, '"': 34, "'": 39, "\\": 92, "a": 7, "b": 8, "f": 12, "v": 11, "?": 63}
_FIELD = re.compile(r'\s*([A-Za-z_]+)\s*:\s*(".*"|\'.*\')\s*(?:#.*)?$')


@dataclass
class CheckpointState:
    model_checkpoint_path: str
    all_model_checkpoint_paths: list[str] = field(default_factory=list)


def escape(text: str) -> str:
    """``text`` as a text-format string body (protobuf ``CEscape`` of its UTF-8 bytes)."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in _SIMPLE:
            out.append(_SIMPLE[ch])
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def unescape(body: str) -> str:
    """The string a text-format string body (without its quotes) stands for."""
    out = bytearray()
    raw = body.encode("utf-8")
    i = 0
    while i < len(raw):
        b = raw[i]
        if b != 0x5C:  # backslash
            out.append(b)
            i += 1
            continue
        i += 1
        if i >= len(raw):
            raise ValueError("string ends with a backslash")
        c = chr(raw[i])
        if c in _UNESCAPE:
            out.append(_UNESCAPE[c])
            i += 1
        elif c in "01234567":
            j = i
            while j < len(raw) and j < i + 3 and chr(raw[j]) in "01234567":
                j += 1
            out.append(int(raw[i:j], 8) & 0xFF)
            i = j
        elif c in "xX":
            j = i + 1
            while j < len(raw) and j < i + 3 and chr(raw[j]) in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 1:
                raise ValueError("\\x with no hex digits")
            out.append(int(raw[i + 1 : j], 16))
            i = j
        else:
            raise ValueError(f"unknown escape \\{c}")
    return out.decode("utf-8", errors="surrogateescape")


def render(state: CheckpointState) -> str:
    """The state file's text."""
    lines = [f'model_checkpoint_path: "{escape(state.model_checkpoint_path)}"']
    lines += [f'all_model_checkpoint_paths: "{escape(p)}"' for p in state.all_model_checkpoint_paths]
    return "\n".join(lines) + "\n"


def parse(text: str) -> CheckpointState:
    """A state file's content; ``ValueError`` if it is not a CheckpointState in text format."""
    model = None
    paths: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        m = _FIELD.match(line)
        if m is None:
            raise ValueError(f"not a checkpoint state line: {line[:80]!r}")
        key, quoted = m.group(1), m.group(2)
        value = unescape(quoted[1:-1])
        if key == "model_checkpoint_path":
            model = value
        elif key == "all_model_checkpoint_paths":
            paths.append(value)
        # Other fields (timestamps) are TensorFlow's business, not ours.
    if model is None:
        if not paths:
            raise ValueError("no model_checkpoint_path")
        model = paths[-1]
    return CheckpointState(model, paths)
