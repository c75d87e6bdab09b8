#!/usr/bin/env python3
"""Goldens for lmforge's seq2seq generation (tasks::generate_seq2seq): transformers' generate() on
tiny seeded Marian checkpoints, read by tests/tasks/test_seq2seq_generate.cpp.

Writes tests/fixtures/seq2seq_generate/:
  model/: a tiny seeded MarianMTModel (save_pretrained) briefly trained on a toy task (copy the
      source, TRAIN_STEPS Adam steps on one CPU thread) so greedy and beam outputs depend on the
      source and end with eos at different lengths; its generation_config.json is shaped like an
      Opus-MT one (bad_words_ids [[pad]], num_beams 4, max_length 64, renormalize_logits true).
  golden.json: {"cases": [...]}, each case
      model: the fixture folder (relative to tests/fixtures), kwargs: the generate() keyword
      arguments given over the folder's generation config (None clears a setting), sources: the
      unpadded source ids (several: right-padded into one batch with an attention mask, as a
      Marian tokenizer pads), output_ids: per returned sequence, generate()'s sequences without
      the decoder start token and cut after the first eos (the padding after a finished sequence
      removed), scores: beam search's sequences_scores (else null).
  translate/: a tiny MarianMTModel over the joint SentencePiece tokenizer of
      tests/fixtures/marian_tokenizer/joint (its files copied in), briefly trained en->fr on
      that fixture's 200 aligned lines (TRANSLATE_STEPS), for the CLI test
      (tests/cli/test_translate_cli.sh); translate.json: TEXTS as transformers translates them
      (MarianTokenizer(texts, padding=True) -> generate() -> decode(skip_special_tokens=True)),
      greedy and with 3 beams, max_new_tokens 10.
  The cases cover greedy and beam search (num_beams 3-4, length_penalty != 1, early_stopping
  true / false / "never", num_return_sequences > 1), no_repeat_ngram_size, repetition_penalty,
  forced BOS/EOS, min_length / min_new_tokens, max_length, bad_words_ids (Marian's pad
  suppression, and a two-token sequence), batched and single sources, and the folder's defaults;
  plus the `marian` fixture of tests/fixtures/marian, whose greedy output without pad suppression
  is all pad tokens.

Regenerate with:  nice -n 19 python3 scripts/reference/gen_seq2seq_generate_goldens.py
(from the repository root; torch and transformers 5.25, no network; deterministic and seeded).
"""
import json
import os
import shutil
import sys

import torch
import transformers as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_marian_goldens import randomize  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
OUT = os.path.join(FIX, "seq2seq_generate")
PAD, EOS = 99, 0
TRAIN_STEPS = 1000
TRANSLATE_STEPS = 2000


def train_copy_task(model, gen, steps, lr, sample, pad):
    """A short deterministic training run on a toy task (target = a copy of the source: 16
    sources a step from sample(gen), padded with `pad`) so the outputs depend on the source and
    end at different lengths; stopped early on purpose so beam search has real alternatives.
    Adam on one CPU thread; the model is left in eval mode; returns the last loss."""
    torch.set_num_threads(1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        srcs = [sample(gen) for _ in range(16)]
        L = max(map(len, srcs))
        ids = torch.tensor([s + [pad] * (L - len(s)) for s in srcs])
        labels = torch.tensor([s + [-100] * (L - len(s)) for s in srcs])
        loss = model(input_ids=ids, attention_mask=(ids != pad).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return loss.item()


def train(model, gen):
    def sample(g):
        n = int(torch.randint(3, 12, (1,), generator=g))
        return torch.randint(3, 90, (n,), generator=g).tolist() + [EOS]
    print("toy training loss", train_copy_task(model, gen, TRAIN_STEPS, 3e-3, sample, PAD))


def make_model():
    cfg = T.MarianConfig(vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2,
                         encoder_attention_heads=4, decoder_attention_heads=4,
                         encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                         scale_embedding=False, activation_function="swish", pad_token_id=PAD,
                         decoder_start_token_id=PAD, eos_token_id=EOS, forced_eos_token_id=EOS,
                         bos_token_id=None, share_encoder_decoder_embeddings=True,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model = T.MarianMTModel(cfg)
    randomize(model, gen)  # the Marian goldens' seeded parameters
    train(model, gen)
    model.generation_config = T.GenerationConfig(
        bad_words_ids=[[PAD]], bos_token_id=0, decoder_start_token_id=PAD, eos_token_id=EOS,
        forced_eos_token_id=EOS, max_length=64, num_beams=4, pad_token_id=PAD,
        renormalize_logits=True)
    d = os.path.join(OUT, "model")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    return "seq2seq_generate/model"


def sources(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = [9, 5, 12, 7][i % 4]
        ids = torch.randint(3, 90, (length - 1,), generator=g).tolist()
        out.append(ids + [EOS])
    return out


def generate_rows(model, srcs, pad, eos, kwargs):
    """model.generate() on the right-padded sources `srcs` with generate()'s `kwargs`: the output
    rows without the decoder start token, each cut after its first token of `eos` (a set), and
    the beam scores (None without beams)."""
    S = max(len(s) for s in srcs)
    ids = torch.tensor([s + [pad] * (S - len(s)) for s in srcs])
    mask = torch.tensor([[1] * len(s) + [0] * (S - len(s)) for s in srcs])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, return_dict_in_generate=True,
                             output_scores=True, **kwargs)
    rows = []
    for row in out.sequences.tolist():
        row = row[1:]
        for i, t in enumerate(row):
            if t in eos:
                row = row[:i + 1]
                break
        rows.append(row)
    scores = getattr(out, "sequences_scores", None)
    return rows, (scores.tolist() if scores is not None else None)


def run(rel, kwargs, srcs):
    model = T.MarianMTModel.from_pretrained(os.path.join(FIX, rel), attn_implementation="eager",
                                            dtype=torch.float32)
    model.eval()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    return generate_rows(model, srcs, model.config.pad_token_id, eos, kwargs)


TEXTS = ["A man is riding a bike.", "Two dogs play in the snow near a tree."]


def train_translator(model, tok, src_lines, tgt_lines, steps, gen, max_length, lr=5e-3):
    """A toy translator: `steps` Adam steps (one CPU thread, seeded batches of 16 aligned lines)
    so that translations depend on the source; the model is left in eval mode; returns the last
    loss."""
    torch.set_num_threads(1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(src_lines), (16,), generator=gen).tolist()
        b = tok([src_lines[i] for i in idx], text_target=[tgt_lines[i] for i in idx],
                padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        b["labels"][b["labels"] == tok.pad_token_id] = -100
        loss = model(**b).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("toy en->fr training loss", loss.item())
    model.eval()
    return loss.item()


def write_translate_golden(model, tok, texts, path, searches=(("greedy", 1), ("beam3", 3))):
    """texts as transformers translates them (tokenizer(texts, padding=True) -> generate() ->
    decode(skip_special_tokens=True)), for each (name, num_beams) of `searches` (default greedy
    and 3 beams), max_new_tokens 10; returns what it wrote."""
    batch = tok(texts, padding=True, return_tensors="pt")
    out = {"texts": texts, "source_ids": [tok(t)["input_ids"] for t in texts]}
    for name, beams in searches:
        with torch.no_grad():
            seqs = model.generate(**batch, num_beams=beams, max_new_tokens=10)
        rows = []
        for row in seqs.tolist():
            row = row[1:]
            if tok.eos_token_id in row:
                row = row[:row.index(tok.eos_token_id) + 1]
            rows.append(row)
        out[name] = {"output_ids": rows,
                     "text": [tok.decode(r, skip_special_tokens=True) for r in rows]}
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=False)
    return out
    print("translate", out)


def make_translate_fixture():
    tok_dir = os.path.join(FIX, "marian_tokenizer", "joint")
    d = os.path.join(OUT, "translate")
    shutil.rmtree(d, ignore_errors=True)
    tok = T.MarianTokenizer.from_pretrained(tok_dir)
    pad = tok.pad_token_id
    cfg = T.MarianConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                         decoder_ffn_dim=64, max_position_embeddings=32, pad_token_id=pad,
                         decoder_start_token_id=pad, eos_token_id=tok.eos_token_id,
                         forced_eos_token_id=tok.eos_token_id)
    torch.manual_seed(5)
    model = T.MarianMTModel(cfg)
    # A toy en->fr translator: TRANSLATE_STEPS Adam steps on the tokenizer fixture's 200 aligned
    # Multi30k lines (one CPU thread, seeded), so translations depend on the source.
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(3)
    def corpus(lang):
        with open(os.path.join(FIX, "marian_tokenizer", "corpus." + lang), encoding="utf-8") as f:
            return f.read().splitlines()

    train_translator(model, tok, corpus("en"), corpus("fr"), TRANSLATE_STEPS, gen, max_length=30)
    model.generation_config = T.GenerationConfig(
        bad_words_ids=[[pad]], decoder_start_token_id=pad, eos_token_id=tok.eos_token_id,
        forced_eos_token_id=tok.eos_token_id, max_length=32, num_beams=2, pad_token_id=pad,
        renormalize_logits=True)
    model.save_pretrained(d)
    for f in os.listdir(tok_dir):
        shutil.copy(os.path.join(tok_dir, f), d)
    model = T.MarianMTModel.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    write_translate_golden(model, tok, TEXTS, os.path.join(OUT, "translate.json"))


def main():
    make_translate_fixture()
    rel = make_model()
    # The last source repeats bigrams: the copying model repeats them unless no_repeat_ngram_size
    # or repetition_penalty stop it.
    batch, single = sources(4, 7) + [[10, 11, 10, 11, 12, 10, 11, EOS]], sources(1, 8)
    cases = [
        ("greedy_batched", rel, dict(num_beams=1, max_new_tokens=20), batch),
        ("greedy_single", rel, dict(num_beams=1, max_new_tokens=20), single),
        ("defaults_beam4", rel, dict(), batch),
        ("beam4_lp06_nrs2", rel, dict(num_beams=4, length_penalty=0.6, early_stopping=False,
                                      num_return_sequences=2, max_new_tokens=16), batch),
        ("beam3_lp15_early", rel, dict(num_beams=3, length_penalty=1.5, early_stopping=True,
                                       num_return_sequences=3, max_new_tokens=16), batch),
        ("beam4_never", rel, dict(num_beams=4, length_penalty=2.0, early_stopping="never",
                                  max_new_tokens=12), batch),
        ("beam4_single", rel, dict(num_beams=4, max_new_tokens=16), single),
        ("no_repeat_ngram2_greedy", rel, dict(num_beams=1, no_repeat_ngram_size=2,
                                              max_new_tokens=20), batch),
        ("no_repeat_ngram2_beam", rel, dict(num_beams=3, no_repeat_ngram_size=2,
                                            max_new_tokens=14), batch),
        ("repetition_penalty", rel, dict(num_beams=1, repetition_penalty=1.5,
                                         max_new_tokens=20), batch),
        ("forced_eos_short", rel, dict(num_beams=1, max_new_tokens=4), batch),
        ("forced_eos_off", rel, dict(num_beams=1, max_new_tokens=4, forced_eos_token_id=None),
         batch),
        ("forced_bos", rel, dict(num_beams=2, forced_bos_token_id=5, max_new_tokens=10), batch),
        ("min_length", rel, dict(num_beams=1, min_length=12, max_new_tokens=20), batch),
        ("min_new_tokens_beam", rel, dict(num_beams=3, min_new_tokens=9, max_new_tokens=16),
         batch),
        ("max_length10", rel, dict(num_beams=1, max_length=10), batch),
        ("bad_words_two_token", rel, dict(num_beams=1, bad_words_ids=[[PAD], [45, 45], [30]],
                                          max_new_tokens=20), batch),
        ("pad_allowed", rel, dict(num_beams=1, bad_words_ids=None, renormalize_logits=False,
                                  max_new_tokens=12), batch),
        ("marian_pad_suppressed", "marian/marian", dict(num_beams=1, bad_words_ids=[[PAD]],
                                                         max_new_tokens=12), batch),
        ("marian_pad_not_suppressed", "marian/marian", dict(num_beams=1, max_new_tokens=12),
         batch),
        ("marian_beam_pad_suppressed", "marian/marian",
         dict(num_beams=4, bad_words_ids=[[PAD]], length_penalty=0.8, max_new_tokens=10,
              num_return_sequences=2), batch),
    ]
    out = []
    for name, model_rel, kwargs, srcs in cases:
        rows, scores = run(model_rel, kwargs, srcs)
        out.append({"name": name, "model": model_rel, "kwargs": kwargs, "sources": srcs,
                    "output_ids": rows, "scores": scores})
        print(name, [len(r) for r in rows])
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump({"cases": out}, f, indent=None)
    print("->", OUT)


if __name__ == "__main__":
    main()
