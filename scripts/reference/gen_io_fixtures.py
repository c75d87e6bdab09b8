#!/usr/bin/env python3
"""Writes tests/fixtures/io/: small checkpoints written by torch and safetensors (every dtype, a
tied-weight state dict with strided views, a sharded safetensors pair + index, a zip64 torch file,
hostile and broken torch files) and io_goldens.json with their exact values, read by
tests/io/test_checkpoint.cpp.

Regenerate with:  python3 scripts/reference/gen_io_fixtures.py
(from the repository root; needs torch and safetensors (pip install safetensors); deterministic).
The hostile pickles are written opcode by opcode and never unpickled here.
"""
import collections
import io
import json
import os
import struct
import zipfile

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "io")
DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
      torch.uint8: "U8", torch.bool: "BOOL"}


def path(*p):
    return os.path.join(OUT, *p)


def golden(sd):
    out = {}
    for k, t in sd.items():
        t = t.detach()
        vals = t.reshape(-1).tolist()
        if t.dtype == torch.bool:
            vals = [int(v) for v in vals]
        elif t.is_floating_point():
            vals = [float(v) for v in t.double().reshape(-1).tolist()]
        out[k] = {"dtype": DT[t.dtype], "shape": list(t.shape), "values": vals}
    return out


def all_dtypes():
    g = torch.Generator().manual_seed(4)
    r = lambda *s: torch.randn(*s, generator=g)
    return collections.OrderedDict([
        ("f32", r(2, 3)),
        ("f16", r(5).half()),
        ("bf16", r(2, 2).bfloat16()),
        ("f64", r(3).double() / 3),
        ("i64", torch.tensor([0, -5, 2**40 + 1, -(2**62)], dtype=torch.int64)),
        ("i32", torch.tensor([7, -8, 2**31 - 1], dtype=torch.int32)),
        ("i16", torch.tensor([-300, 12000], dtype=torch.int16)),
        ("i8", torch.tensor([-128, 0, 127], dtype=torch.int8)),
        ("u8", torch.tensor([0, 1, 255], dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, False, True])),
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 4)),
    ])


def tied():
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(5, 3, generator=g)
    w = torch.randn(3, 4, generator=g)
    big = torch.randn(4, 6, generator=g)
    return collections.OrderedDict([
        ("embed.weight", emb),
        ("lm_head.weight", emb),             # tied: same storage
        ("proj.weight", torch.nn.Parameter(w)),  # _rebuild_parameter
        ("proj_t", w.t()),                   # non-contiguous view of proj.weight's storage
        ("rows", big[1:3]),                  # storage offset
        ("cols", big[:, 2:5]),               # offset + row stride 6
        ("half", torch.arange(6, dtype=torch.float16).view(2, 3)),
    ])


def zip_bytes(entries, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def torch_entries(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def zip64_bytes(entries):
    """A stored zip whose central directory uses ZIP64 for every size and offset (what torch writes
    for checkpoints over 4 GiB), written field by field."""
    out, central = bytearray(), bytearray()
    for name, data in entries:
        nb = name.encode()
        crc = zipfile.crc32(data) & 0xFFFFFFFF
        off = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, len(data), len(data),
                           len(nb), 0) + nb + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(extra), 0, 0, 0, 0,
                               0xFFFFFFFF) + nb + extra
    cd_off = len(out)
    out += central
    z64 = len(out)
    n = len(entries)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


def evil_pickles():
    # GLOBAL 'os system' + REDUCE('echo pwned'): what a hostile pytorch_model.bin looks like.
    os_system = (b"\x80\x02" + b"cos\nsystem\n" + b"q\x00" + b"X\x0a\x00\x00\x00echo pwned"
                 + b"\x85" + b"R" + b".")
    # Protocol 4 STACK_GLOBAL builtins.eval.
    builtins_eval = (b"\x80\x04" + b"\x8c\x08builtins" + b"\x8c\x04eval" + b"\x93"
                     + b"\x8c\x0a1+1       " + b"\x85" + b"R" + b".")
    return os_system, builtins_eval


def main():
    os.makedirs(path("sharded"), exist_ok=True)
    goldens = {}

    dt = all_dtypes()
    save_file({k: v.contiguous() for k, v in dt.items()}, path("dtypes.safetensors"),
              metadata={"format": "pt"})
    torch.save(dt, path("dtypes.bin"))
    goldens["dtypes"] = golden(dt)

    td = tied()
    torch.save(td, path("tied.bin"))
    save_file({k: v.detach().contiguous().clone() for k, v in td.items()}, path("tied.safetensors"))
    goldens["tied"] = golden(td)
    with open(path("tied_zip64.bin"), "wb") as f:
        f.write(zip64_bytes(torch_entries(td)))
    check = zipfile.ZipFile(path("tied_zip64.bin"))
    assert check.testzip() is None

    # What our writer must reproduce byte for byte (names chosen to exercise the ordering).
    g = torch.Generator().manual_seed(6)
    save_ref = collections.OrderedDict([
        ("b.weight", torch.randn(2, 3, generator=g)),
        ("a.weight", torch.randn(3, generator=g)),
        ("A", torch.randn(2, generator=g).half()),
        ("z.bias", torch.randn(3, generator=g).bfloat16()),
        ("ids", torch.tensor([1, 2, 3], dtype=torch.int64)),
        ("mask", torch.tensor([True, False, True])),
        ("q", torch.tensor([-1, 2], dtype=torch.int8)),
        ("u", torch.tensor([9], dtype=torch.uint8)),
        ("i", torch.tensor([-7], dtype=torch.int32)),
        ("s", torch.tensor(1.25)),
    ])
    save_file(save_ref, path("save_ref.safetensors"), metadata={"format": "pt"})
    goldens["save_ref"] = golden(save_ref)

    g = torch.Generator().manual_seed(7)
    shard_a = {"layer.0.weight": torch.randn(2, 2, generator=g), "layer.0.bias": torch.randn(2, generator=g)}
    shard_b = {"layer.1.weight": torch.randn(2, 2, generator=g).half(),
               "extra.not_listed": torch.zeros(1)}
    save_file(shard_a, path("sharded", "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    save_file(shard_b, path("sharded", "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    index = {"metadata": {"total_size": 28},
             "weight_map": {"layer.0.weight": "model-00001-of-00002.safetensors",
                            "layer.0.bias": "model-00001-of-00002.safetensors",
                            "layer.1.weight": "model-00002-of-00002.safetensors"}}
    with open(path("sharded", "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    goldens["sharded"] = golden({**shard_a, "layer.1.weight": shard_b["layer.1.weight"]})

    # Hostile and broken torch files.
    os_system, builtins_eval = evil_pickles()
    base = torch_entries(td)
    prefix = base[0][0].split("/")[0]
    with open(path("evil_os_system.bin"), "wb") as f:
        f.write(zip_bytes([(f"{prefix}/data.pkl", os_system), (f"{prefix}/version", b"3\n")]))
    with open(path("evil_eval.bin"), "wb") as f:
        f.write(zip_bytes([(f"{prefix}/data.pkl", builtins_eval), (f"{prefix}/version", b"3\n")]))
    with open(path("compressed.bin"), "wb") as f:
        f.write(zip_bytes(base, zipfile.ZIP_DEFLATED))
    with open(path("missing_data.bin"), "wb") as f:
        f.write(zip_bytes([(n, d) for n, d in base if not n.endswith("/data/0")]))
    torch.save(td, path("legacy.bin"), _use_new_zipfile_serialization=False)

    with open(path("io_goldens.json"), "w") as f:
        json.dump(goldens, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
