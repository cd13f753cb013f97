"""The nesting depth of JSON text, measured without parsing it.

Python's JSON decoder and the schema validator recurse once per level: a body of a
hundred thousand ``[`` would exhaust the interpreter's recursion limit deep inside
them. Real reports nest a handful of levels (an NSM report: report → findings →
finding → evidence ≈ 5), so a limit far above that refuses only hostile or broken
bodies, before any parser sees them. The count runs over the brackets outside strings,
vectorised in blocks, so that a 50 MB body costs well under a second and little memory.
"""

import re

import numpy as np

#: Deepest nesting of arrays and objects accepted in a JSON body or an NDJSON line.
MAX_DEPTH = 64

# A JSON string holds no raw newline (control characters must be escaped), so a string
# never runs past a line's end; an unterminated quote costs its line only.
_STRINGS = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_STRUCTURE = b"[]{}\n"
_OTHER_BYTES = bytes(sorted(set(range(256)) - set(_STRUCTURE)))
# Bytes → steps in depth (int8): an opening bracket +1, a closing one -1, a newline 0.
_STEPS = bytes.maketrans(_STRUCTURE, bytes([1, 255, 1, 255, 0]))
_BLOCK = 1 << 20


def max_depth(text: str, per_line: bool = False) -> int:
    """The deepest nesting in ``text``; with ``per_line``, of any one line (NDJSON)."""
    deleted = _OTHER_BYTES if per_line else _OTHER_BYTES + b"\n"
    skeleton = _STRINGS.sub("", text).encode("utf-8").translate(None, deleted)
    deepest, carry = 0, 0
    for start in range(0, len(skeleton), _BLOCK):
        chunk = skeleton[start : start + _BLOCK]
        newline = np.frombuffer(chunk, dtype=np.uint8) == ord("\n") if per_line else None
        block = np.frombuffer(chunk.translate(_STEPS), dtype=np.int8)
        depth = carry + np.cumsum(block, dtype=np.int32)
        if per_line:
            # Depth counts from the last newline: subtract the depth reached there.
            if newline.any():
                last = np.maximum.accumulate(np.where(newline, np.arange(len(block)), -1))
                depth = depth - np.where(last >= 0, depth[np.maximum(last, 0)], 0)
        deepest = max(deepest, int(depth.max()))
        carry = int(depth[-1])
    return deepest
