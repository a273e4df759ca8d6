#!/usr/bin/env python3
"""The benchmark's floor: decode and re-encode every input line, nothing else.

    python benchmarks/floor.py < input.singer

Run with the project's venv (it needs ``msgspec``). The decoder and encoder are set up as
the target's are (singer-sdk's msgspec reader: floats as ``Decimal``, big integers exact;
Decimals written as JSON numbers), so the time this takes is the part of any target's
cost that cannot be avoided. It prints one line: the number of lines read.
"""

from __future__ import annotations

import decimal
import sys

import msgspec


def main() -> None:
    """Read stdin's lines, decode and encode each one, print how many there were."""
    decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)
    encoder = msgspec.json.Encoder(decimal_format="number")
    buffer = bytearray(256)
    lines = 0
    for line in sys.stdin.buffer:
        if line.strip():
            encoder.encode_into(decoder.decode(line), buffer)
            lines += 1
    sys.stdout.write(f"{lines}\n")


if __name__ == "__main__":
    main()
