#!/usr/bin/env python3
"""Goldens for lmforge's PNG writer (tasks/heatmap_png.h): CRC-32 and Adler-32 of a few byte
strings as Python's zlib computes them, read by tests/tasks/test_heatmap_png.cpp.
The PNG files themselves are decoded by Python's zlib in tests/cli/test_seq2seq_tools_cli.sh.

Writes tests/fixtures/heatmap_png/checksums.json: [{"hex": bytes as hex, "crc32": ...,
"adler32": ...}].
Regenerate with:  nice -n 19 python3 scripts/reference/gen_png_goldens.py
(from the repository root; standard library only; deterministic).
"""
import json
import os
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "heatmap_png", "checksums.json")


def main():
    cases = [b"", b"IEND", b"IHDR\x00\x00\x00\x10\x00\x00\x00\x08\x08\x02\x00\x00\x00",
             b"Wikipedia", bytes(range(256)) * 3, b"\xff" * 7000]
    out = [{"hex": c.hex(), "crc32": zlib.crc32(c) & 0xFFFFFFFF, "adler32": zlib.adler32(c)}
           for c in cases]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    json.dump(out, open(OUT, "w"))


if __name__ == "__main__":
    main()
