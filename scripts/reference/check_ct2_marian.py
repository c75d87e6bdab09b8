#!/usr/bin/env python3
"""Checks that CTranslate2 (and with --transformers, transformers) translates an lmforge-saved
Marian folder as lmforge does (issue 11):
converts the folder with ctranslate2.converters.TransformersConverter, translates the first --n
lines of --sources greedily with both (`lmforge translate --json --source-ids`, the same source
ids from the folder's MarianTokenizer; CTranslate2 translate_batch, float32) and compares the
generated token ids.

CTranslate2's Marian conversion drops <pad> from the vocabulary (it can never be generated) and
starts the decoder from a zero embedding instead of the pad token's row. So lmforge runs with
Opus-MT's pad suppression (bad_words_ids [[pad]] added to a copy of generation_config.json), and
the report says whether the folder's pad embedding row is zero (transformers zero-initialises it;
training a model with tied embeddings moves it a little through the output layer in PyTorch and
lmforge alike). A difference there can change the first decoder step; --zero-pad-row also runs
lmforge on a copy with that row zeroed to tell the two causes apart.
Ids compared: lmforge's output_ids without the end-of-sequence token against CTranslate2's
hypothesis tokens; a translation that hit --max-new-tokens is compared on its first N - 1 tokens
(lmforge forces </s> as the last token there, CTranslate2 does not).

--transformers also runs MarianMTModel.generate (greedy, or --num-beams B for transformers and
lmforge only; the same bad_words_ids and max_new_tokens, batches of 16 padded sources) and
compares its ids (without the decoder start token) with lmforge's exactly.

Usage: python3 scripts/reference/check_ct2_marian.py --model DIR [--n 50] [--transformers]
         [--num-beams 1]
         [--sources ../shared/data/multi30k/test_2016_flickr.en] [--max-new-tokens 64]
         [--lmforge build/lmforge] [--zero-pad-row]
Exit status 0 when every compared translation is equal, 1 otherwise. Needs ctranslate2,
transformers, sentencepiece (pip).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def lmforge_translate(lmf, model, ids, max_new, threads, beams=1):
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(threads))
    cmd = [lmf, "translate", "--model", model, "--json", "--num-beams", str(beams), "--max-new-tokens",
           str(max_new), "--source-ids", json.dumps(ids)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"lmforge translate failed: {r.stderr}")
    return [json.loads(l)["output_ids"] for l in r.stdout.splitlines() if l.strip()]


def folder_copy(model, tmp, pad, zero_row):
    """A copy (links for the big files) with bad_words_ids [[pad]]; optionally the pad row 0."""
    out = os.path.join(tmp, "zero" if zero_row else "copy")
    os.makedirs(out)
    for f in os.listdir(model):
        src = os.path.join(model, f)
        if os.path.isfile(src) and f != "generation_config.json" and not (
                zero_row and f == "model.safetensors"):
            os.symlink(src, os.path.join(out, f))
    gpath = os.path.join(model, "generation_config.json")
    g = json.load(open(gpath)) if os.path.exists(gpath) else {}
    g["bad_words_ids"] = [[pad]]
    json.dump(g, open(os.path.join(out, "generation_config.json"), "w"), indent=2)
    if zero_row:
        from safetensors.numpy import load_file, save_file
        w = load_file(os.path.join(model, "model.safetensors"))
        for k, v in w.items():
            if k.endswith("shared.weight") or k.endswith("embed_tokens.weight") or \
                    k == "lm_head.weight":
                v[pad] = 0
        save_file(w, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    return out


def ct2_comparable(x, y, eos, max_new):
    """lmforge's and CTranslate2's ids without the end-of-sequence token; a translation that hit
    max_new is compared on its first max_new - 1 tokens (lmforge forces </s> last there)."""
    if len(x) >= max_new:
        return x[:max_new - 1], y[:max_new - 1]
    return (x[:-1] if x and x[-1] == eos else x), (y[:-1] if y and y[-1] == eos else y)


def compare_ids(lmf, other, other_name, lines, normalise=lambda x, y: (x, y)):
    """{"equal", "of", "first_difference"} of lmforge's id lists against another engine's, each
    pair passed through normalise first."""
    equal, first_diff = 0, None
    for i, (x, y) in enumerate(zip(lmf, other)):
        xs, ys = normalise(x, y)
        if xs == ys:
            equal += 1
        elif first_diff is None:
            first_diff = {"index": i, "source": lines[i], "lmforge": x, other_name: y}
    return {"equal": equal, "of": len(lmf), "first_difference": first_diff}


def compare_transformers(a, model, folder, ids, lines, pad):
    """lmforge translate vs MarianMTModel.generate, both with bad_words_ids [[pad]]."""
    import torch
    from transformers import MarianMTModel
    torch.set_num_threads(a.threads)
    m = MarianMTModel.from_pretrained(model).eval()
    hf = []
    with torch.no_grad():
        for b in range(0, len(ids), 16):
            batch = ids[b:b + 16]
            width = max(len(s) for s in batch)
            x = torch.tensor([s + [pad] * (width - len(s)) for s in batch])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
            out = m.generate(input_ids=x, attention_mask=mask, num_beams=a.num_beams,
                             do_sample=False, max_new_tokens=a.max_new_tokens,
                             bad_words_ids=[[pad]])
            for row in out.tolist():
                row = row[1:]  # the decoder start token
                while row and row[-1] == pad:  # padding of shorter hypotheses
                    row.pop()
                hf.append(row)
    lmf = lmforge_translate(a.lmforge, folder, ids, a.max_new_tokens, a.threads, a.num_beams)
    r = compare_ids(lmf, hf, "transformers", lines)
    print(f"token ids equal to transformers (beams {a.num_beams}): {r['equal']}/{len(ids)}",
          file=sys.stderr)
    return dict(r, num_beams=a.num_beams)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--sources", default=next(
        (p for p in (os.path.join(ROOT, "..", "shared", "data", "multi30k", "test_2016_flickr.en"),
                     "/work/shared/data/multi30k/test_2016_flickr.en") if os.path.exists(p)),
        None))
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lmforge", default=os.path.join(ROOT, "build", "lmforge"))
    ap.add_argument("--zero-pad-row", action="store_true")
    ap.add_argument("--transformers", action="store_true",
                    help="also compare with transformers' MarianMTModel.generate")
    ap.add_argument("--num-beams", type=int, default=1,
                    help="beams for the transformers comparison (CTranslate2: greedy only)")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ctranslate2
    import numpy as np
    from ctranslate2.converters import TransformersConverter
    from safetensors.numpy import load_file
    from transformers import MarianTokenizer

    model = os.path.abspath(a.model)
    tok = MarianTokenizer.from_pretrained(model)
    vocab = json.load(open(os.path.join(model, "vocab.json")))
    inv = {v: k for k, v in vocab.items()}
    cfg = json.load(open(os.path.join(model, "config.json")))
    pad, eos = cfg["pad_token_id"], cfg["eos_token_id"]
    # Sources the model's positions hold (CTranslate2 refuses longer ones), and as many new tokens.
    max_pos = cfg.get("max_position_embeddings", 512)
    a.max_new_tokens = min(a.max_new_tokens, max_pos - 1)
    lines = [l.strip() for l in open(a.sources) if l.strip()]
    lines = [l for l in lines if len(tok(l)["input_ids"]) <= max_pos][:a.n]
    ids = [tok(l)["input_ids"] for l in lines]
    w = load_file(os.path.join(model, "model.safetensors"))
    emb = next(v for k, v in w.items() if k.endswith("shared.weight") or
               k.endswith("encoder.embed_tokens.weight"))
    pad_row_max = float(np.abs(emb[pad]).max())

    with tempfile.TemporaryDirectory() as tmp:
        ct2_dir = os.path.join(tmp, "ct2")
        TransformersConverter(model).convert(ct2_dir, force=True)
        tr = ctranslate2.Translator(ct2_dir, device="cpu", compute_type="float32",
                                    intra_threads=a.threads)
        res = tr.translate_batch([[inv[i] for i in s] for s in ids], beam_size=1,
                                 max_decoding_length=a.max_new_tokens, return_end_token=True)
        ct2_ids = [[vocab[t] for t in r.hypotheses[0]] for r in res]
        runs = {"as saved": folder_copy(model, tmp, pad, False)}
        if a.zero_pad_row:
            runs["pad row zeroed"] = folder_copy(model, tmp, pad, True)
        report = {"model": model, "sentences": len(ids), "pad_row_max_abs": pad_row_max}
        ok = True
        for name, folder in runs.items():
            lmf = lmforge_translate(a.lmforge, folder, ids, a.max_new_tokens, a.threads)
            report[name] = compare_ids(
                lmf, ct2_ids, "ct2", lines,
                lambda x, y: ct2_comparable(x, y, eos, a.max_new_tokens))
            ok = ok and (name != "as saved" or report[name]["equal"] == len(ids))
        if a.transformers:
            report["transformers"] = compare_transformers(a, model, runs["as saved"], ids, lines,
                                                          pad)
            ok = ok and report["transformers"]["equal"] == len(ids)
        print(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"greedy token ids equal (as saved): {report['as saved']['equal']}/{len(ids)}; "
              f"pad embedding row max |x| = {pad_row_max:.3g}", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
