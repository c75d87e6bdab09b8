#!/usr/bin/env python3
"""Goldens for lmforge's BART family (BartModel, BartForConditionalGeneration,
BartForSequenceClassification), its generation and its byte-level BPE tokenizer, read by
tests/models/test_bart.cpp. Everything under tests/fixtures/bart/:

Models, built by transformers 5.25 from a BartConfig, parameters redrawn from a seeded generator
(layer-norm weights around 1, biases, learned positions and final_logits_bias non-zero), saved with
save_pretrained and loaded back (eager attention, eval mode, f32) so the goldens come from disk:
  bart/:         BartForConditionalGeneration, scale_embedding, gelu, tied embeddings (one saved
                 matrix), 2+2 layers.
  bart_untied/:  tie_word_embeddings false (shared, both embed_tokens and lm_head saved), relu, no
                 embedding scale, 2 encoder / 3 decoder layers with different heads and FFN widths.
  bart_base/:    bart loaded and saved as BartModel (keys without "model.").
  bart_cls/:     BartForSequenceClassification (num_labels 3 = BartConfig's default, tanh head).
golden.json per LM model (as gen_marian_goldens.py): input_ids / attention_mask [2, S] (row 1
  right-padded), labels [2, T] (row 1 ending in -100), decoder_input_ids (shift_tokens_right of
  the labels), logits, logits_decoder_mask with decoder_attention_mask, encoder_last_hidden_state,
  decoder_last_hidden_state (BartModel), logits_from_input_ids (no decoder ids: the decoder reads
  shift_tokens_right(input_ids), BART's denoising default), greedy (12 new tokens, forced EOS off),
  loss and grads of some parameters after loss.backward() (one training step's gradients).
bart_cls/golden.json: input_ids (two eos per row), attention_mask, logits [2, 3], labels [2],
  loss, grads; and uneven_eos_error: the message transformers raises when rows differ in eos
  count.

Generation (generate.json + bart_gen/): a tiny BART briefly trained (copy task, TRAIN_STEPS Adam
  steps on one CPU thread) whose generation_config.json is shaped like facebook/bart-large's
  (forced_bos_token_id 0, forced_eos 2, no_repeat_ngram_size 3, num_beams 4, early_stopping,
  length_penalty 2.0); cases: generate() kwargs over the folder config (None clears), sources
  (<s> ... </s>, several right-padded into one batch), output_ids without the decoder start token,
  cut after the first eos, and beam scores.

Tokenizer: a byte-level BPE (vocab 400) trained by `tokenizers` on the tests/fixtures/
  marian_tokenizer corpus with <s> <pad> </s> <unk> <mask> = 0..4: tokenizer_legacy/ (vocab.json,
  merges.txt, tokenizer_config.json naming BartTokenizer) and tokenizer/ (what BartTokenizer's
  save_pretrained writes: tokenizer.json, tokenizer_config.json); tokenizer.json: encodings of
  texts and pairs (ids, attention masks) and decodes with and without special tokens, both folders
  loaded by AutoTokenizer.

translate/ + translate.json: a tiny BART over tokenizer/ trained en->fr (TRANSLATE_STEPS) on the
  marian_tokenizer corpus; TEXTS translated by tokenizer -> generate -> decode(skip_special_tokens),
  greedy and 3 beams, max_new_tokens 10 (for lmforge translate).

Regenerate with:  HF_HUB_OFFLINE=1 nice -n 19 python3 scripts/reference/gen_bart_goldens.py
(from the repository root; torch, transformers 5.25 and tokenizers; deterministic, seeded, no
network).
"""
import json
import os
import shutil
import sys

import torch
import transformers as T
from tokenizers import ByteLevelBPETokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_decoder_goldens import tensor_json  # noqa: E402  (same JSON tensor format)
from gen_seq2seq_generate_goldens import (  # noqa: E402  (the Marian translate fixture's recipe)
    TEXTS, generate_rows, train_copy_task, train_translator, write_translate_golden)

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
ROOT = os.path.join(FIX, "bart")
S, TGT = 7, 6
GREEDY_NEW = 12
PAD, BOS, EOS = 1, 0, 2
TRAIN_STEPS = 600
TRANSLATE_STEPS = 1200

SMALL = dict(vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2,
             encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
             decoder_ffn_dim=64, max_position_embeddings=64)
MODELS = {
    "bart": (dict(SMALL, scale_embedding=True, activation_function="gelu"),
             ["model.shared.weight", "model.encoder.layers.0.self_attn.q_proj.weight",
              "model.decoder.layers.1.encoder_attn.k_proj.weight",
              "model.decoder.layers.0.fc1.bias", "model.encoder.embed_positions.weight",
              "model.decoder.layernorm_embedding.weight",
              "model.encoder.layers.1.final_layer_norm.weight"]),
    "bart_untied": (dict(SMALL, decoder_layers=3, decoder_attention_heads=2, decoder_ffn_dim=48,
                         scale_embedding=False, activation_function="relu",
                         tie_word_embeddings=False),
                    ["lm_head.weight", "model.decoder.embed_tokens.weight",
                     "model.encoder.embed_tokens.weight", "model.decoder.embed_positions.weight",
                     "model.decoder.layers.2.encoder_attn.v_proj.bias",
                     "model.encoder.layernorm_embedding.bias"]),
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("layer_norm" in name or "layernorm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias.copy_(0.1 * torch.randn(model.final_logits_bias.shape,
                                                            generator=gen))


def load(cls, d):
    m = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    m.eval()
    return m


def inputs(gen, vocab):
    ids = torch.randint(5, vocab - 1, (2, S), generator=gen)
    ids[:, 0] = BOS
    mask = torch.ones(2, S, dtype=torch.long)
    ids[0, -1] = EOS
    ids[1, -3] = EOS
    ids[1, -2:] = PAD
    mask[1, -2:] = 0
    labels = torch.randint(5, vocab - 1, (2, TGT), generator=gen)
    labels[:, 0] = BOS
    labels[0, -1] = EOS
    labels[1, -3] = EOS
    labels[1, -2:] = -100
    return ids, mask, labels


def make_lm(name, kw, grad_names):
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    cfg = T.BartConfig(**kw)
    model = T.BartForConditionalGeneration(cfg)
    randomize(model, gen)
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    model = load(T.BartForConditionalGeneration, d)
    ids, mask, labels = inputs(gen, cfg.vocab_size)
    dec_ids = model.prepare_decoder_input_ids_from_labels(labels)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    params = dict(model.named_parameters())
    dec_mask = (labels != -100).long()
    with torch.no_grad():
        base = model.model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_ids)
        masked = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_ids,
                       decoder_attention_mask=dec_mask).logits
        from_ids = model(input_ids=ids, attention_mask=mask).logits
        greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=GREEDY_NEW,
                                num_beams=1, do_sample=False, forced_eos_token_id=None)
    g = {"input_ids": tensor_json(ids), "attention_mask": tensor_json(mask),
         "labels": tensor_json(labels), "decoder_input_ids": tensor_json(dec_ids),
         "logits": tensor_json(out.logits), "decoder_attention_mask": tensor_json(dec_mask),
         "logits_decoder_mask": tensor_json(masked),
         "logits_from_input_ids": tensor_json(from_ids),
         "encoder_last_hidden_state": tensor_json(out.encoder_last_hidden_state),
         "decoder_last_hidden_state": tensor_json(base.last_hidden_state),
         "greedy": tensor_json(greedy), "loss": out.loss.item(),
         "grads": {n: tensor_json(params[n].grad) for n in grad_names}}
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(g, f)
    print(name, "loss", out.loss.item())
    return d


def make_cls():
    name = "bart_cls"
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    cfg = T.BartConfig(**dict(SMALL, scale_embedding=True, classifier_dropout=0.1))
    model = T.BartForSequenceClassification(cfg)
    randomize(model, gen)
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    model = load(T.BartForSequenceClassification, d)
    ids = torch.randint(5, 99, (2, S), generator=gen)
    ids[:, 0] = BOS
    ids[0, 3] = EOS  # two eos per row: the last one is pooled
    ids[0, -1] = EOS
    ids[1, 2] = EOS
    ids[1, -3] = EOS
    ids[1, -2:] = PAD
    mask = (ids != PAD).long()
    labels = torch.tensor([2, 0])
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    params = dict(model.named_parameters())
    grad_names = ["classification_head.dense.weight", "classification_head.out_proj.bias",
                  "model.shared.weight", "model.decoder.layers.1.fc2.weight",
                  "model.encoder.layers.0.self_attn.v_proj.weight"]
    bad = ids.clone()
    bad[1, 2] = 7
    try:
        model(input_ids=bad, attention_mask=mask)
        err = None
    except Exception as e:  # noqa: BLE001 - the message is the golden
        err = str(e)
    assert err is not None, "transformers accepted uneven eos counts"
    g = {"input_ids": tensor_json(ids), "attention_mask": tensor_json(mask),
         "labels": tensor_json(labels), "logits": tensor_json(out.logits),
         "loss": out.loss.item(),
         "grads": {n: tensor_json(params[n].grad) for n in grad_names},
         "uneven_eos_input_ids": tensor_json(bad), "uneven_eos_error": err}
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(g, f)
    print(name, "loss", out.loss.item(), "| uneven eos:", err)


# ---- generation -----------------------------------------------------------------------------

def train_copy(model, gen):
    def sample(g):
        n = int(torch.randint(3, 12, (1,), generator=g))
        return [BOS] + torch.randint(5, 90, (n,), generator=g).tolist() + [EOS]
    print("toy copy training loss", train_copy_task(model, gen, TRAIN_STEPS, 3e-3, sample, PAD))


def gen_sources(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = [9, 5, 12, 7][i % 4]
        out.append([BOS] + torch.randint(5, 90, (length - 2,), generator=g).tolist() + [EOS])
    return out


def run_generate(d, kwargs, srcs):
    return generate_rows(load(T.BartForConditionalGeneration, d), srcs, PAD, {EOS}, kwargs)


def make_generate():
    cfg = T.BartConfig(**dict(SMALL, scale_embedding=False, activation_function="gelu",
                              dropout=0.0))
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4321)
    model = T.BartForConditionalGeneration(cfg)
    randomize(model, gen)
    train_copy(model, gen)
    model.generation_config = T.GenerationConfig(
        bos_token_id=BOS, decoder_start_token_id=EOS, eos_token_id=EOS, forced_bos_token_id=BOS,
        forced_eos_token_id=EOS, pad_token_id=PAD, no_repeat_ngram_size=3, num_beams=4,
        early_stopping=True, length_penalty=2.0, max_length=40)
    d = os.path.join(ROOT, "bart_gen")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    batch = gen_sources(4, 7) + [[BOS, 10, 11, 12, 10, 11, 12, 10, 11, EOS]]
    single = gen_sources(1, 8)
    cases = [
        ("defaults_beam4", dict(), batch),
        ("defaults_beam4_single", dict(), single),
        ("greedy_batched", dict(num_beams=1, max_new_tokens=20), batch),
        ("greedy_single", dict(num_beams=1, max_new_tokens=20), single),
        ("greedy_no_ngram_block", dict(num_beams=1, no_repeat_ngram_size=0, max_new_tokens=20),
         batch),
        ("greedy_forced_bos_off", dict(num_beams=1, forced_bos_token_id=None, max_new_tokens=20),
         batch),
        ("beam3_nrs2_lp06", dict(num_beams=3, length_penalty=0.6, early_stopping=False,
                                 num_return_sequences=2, max_new_tokens=16), batch),
        ("beam4_never_single", dict(num_beams=4, early_stopping="never", max_new_tokens=12),
         single),
        ("beam2_min_length", dict(num_beams=2, min_length=14, max_new_tokens=20), batch),
        ("forced_eos_short", dict(num_beams=1, max_new_tokens=5), batch),
        ("forced_bos_7_beam2", dict(num_beams=2, forced_bos_token_id=7, max_new_tokens=10), batch),
    ]
    out = []
    for name, kwargs, srcs in cases:
        rows, scores = run_generate(d, kwargs, srcs)
        out.append({"name": name, "kwargs": kwargs, "sources": srcs, "output_ids": rows,
                    "scores": scores})
        print(name, [len(r) for r in rows])
    with open(os.path.join(ROOT, "generate.json"), "w") as f:
        json.dump({"model": "bart/bart_gen", "cases": out}, f)


# ---- tokenizer ------------------------------------------------------------------------------

TOK_TEXTS = ["A man is riding a bike.", "Two dogs play in the snow near a tree.",
             "Hello <mask> world!", "  leading spaces and\ttabs\n", "Crème brûlée à Zürich — 10€",
             "unusualwordsnotinvocab xyzzy", "<s>already</s> special <pad>", ""]
TOK_PAIRS = [["A man is riding a bike.", "Un homme fait du vélo."], ["Question?", "Answer!"]]


def make_tokenizer():
    corpus = [os.path.join(FIX, "marian_tokenizer", "corpus." + l) for l in ("en", "fr")]
    bpe = ByteLevelBPETokenizer()
    bpe.train(corpus, vocab_size=400, min_frequency=2,
              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    legacy = os.path.join(ROOT, "tokenizer_legacy")
    shutil.rmtree(legacy, ignore_errors=True)
    os.makedirs(legacy)
    bpe.save_model(legacy)
    with open(os.path.join(legacy, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "BartTokenizer"}, f, indent=2)
    tok = T.AutoTokenizer.from_pretrained(legacy)
    saved = os.path.join(ROOT, "tokenizer")
    shutil.rmtree(saved, ignore_errors=True)
    tok.save_pretrained(saved)
    g = {}
    for folder in ("tokenizer_legacy", "tokenizer"):
        t = T.AutoTokenizer.from_pretrained(os.path.join(ROOT, folder))
        enc = []
        for text in TOK_TEXTS:
            e = t(text)
            enc.append({"text": text, "ids": e["input_ids"],
                        "no_special": t(text, add_special_tokens=False)["input_ids"],
                        "decoded": t.decode(e["input_ids"]),
                        "decoded_skip": t.decode(e["input_ids"], skip_special_tokens=True)})
        pairs = []
        for a, b in TOK_PAIRS:
            e = t(a, b)
            pairs.append({"a": a, "b": b, "ids": e["input_ids"],
                          "decoded": t.decode(e["input_ids"])})
        g[folder] = {"texts": enc, "pairs": pairs, "vocab_size": len(t),
                     "special": {"bos": t.bos_token_id, "eos": t.eos_token_id,
                                 "pad": t.pad_token_id, "unk": t.unk_token_id,
                                 "mask": t.mask_token_id}}
    with open(os.path.join(ROOT, "tokenizer.json"), "w") as f:
        json.dump(g, f, ensure_ascii=False)
    print("tokenizer vocab", len(tok))
    return tok


def make_translate(tok):
    d = os.path.join(ROOT, "translate")
    shutil.rmtree(d, ignore_errors=True)
    cfg = T.BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                       decoder_ffn_dim=64, max_position_embeddings=64, dropout=0.0)
    torch.manual_seed(5)
    model = T.BartForConditionalGeneration(cfg)
    gen = torch.Generator().manual_seed(3)

    def corpus(lang):
        with open(os.path.join(FIX, "marian_tokenizer", "corpus." + lang), encoding="utf-8") as f:
            return f.read().splitlines()

    train_translator(model, tok, corpus("en"), corpus("fr"), TRANSLATE_STEPS, gen, max_length=60)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    model = load(T.BartForConditionalGeneration, d)
    write_translate_golden(model, tok, TEXTS, os.path.join(ROOT, "translate.json"))


def main():
    torch.manual_seed(0)
    os.makedirs(ROOT, exist_ok=True)
    for name, (kw, grads) in MODELS.items():
        d = make_lm(name, kw, grads)
        if name == "bart":
            base = os.path.join(ROOT, "bart_base")
            shutil.rmtree(base, ignore_errors=True)
            T.BartModel.from_pretrained(d).save_pretrained(base)
    make_cls()
    tok = make_tokenizer()
    make_translate(tok)
    make_generate()


if __name__ == "__main__":
    main()
