#!/usr/bin/env python3
"""Writes tiny seeded T5ForConditionalGeneration checkpoints with golden outputs under
tests/fixtures/t5/, read by tests/models/test_t5.cpp and tests/tasks/test_t5_generate.cpp.

Each model is built by transformers 5.25 (T5Config -> T5ForConditionalGeneration), its parameters
transformers' seeded initialisation (layer norms redrawn around 1), briefly trained on a toy copy task
(TRAIN_STEPS Adam steps, one CPU thread, dropout on) so that greedy and beam search end with eos at
different lengths, saved with save_pretrained and loaded back with from_pretrained (eager
attention, eval mode, f32): the goldens come from what is on disk.
  t5_relu_tied:   T5 v1.0 style: feed_forward_proj "relu", tie_word_embeddings default (lm_head is
                  shared.weight, the decoder output scaled by d_model**-0.5), 8 buckets with
                  max_distance 12 (the logarithmic buckets are reached), 2 + 2 layers.
  t5_gated_untied: T5 v1.1 style: "gated-gelu" (gelu_new), tie_word_embeddings False (no output
                  scaling) and its own lm_head.weight (transformers 5.25 keeps it untied because
                  the checkpoint's lm_head differs from shared), d_kv * num_heads != d_model,
                  2 encoder and 3 decoder layers.
t5_base/: t5_relu_tied loaded and saved as T5Model (config.json, model.safetensors).

golden.json per model (as gen_marian_goldens.py):
  input_ids / attention_mask [2, S]: row 1 right-padded; labels [2, T] (row 1 ends in -100);
  decoder_input_ids = _shift_right(labels); logits, encoder_last_hidden_state,
  decoder_last_hidden_state (T5Model), logits_decoder_mask with decoder_attention_mask; greedy:
  generate() (12 new tokens; without a cache when num_decoder_layers != num_layers, which
  transformers 5.25's generate() cannot cache); loss and grads of a few parameters (both relative_attention_bias
  tables among them); adamw: those parameters after one torch.optim.AdamW step (lr 1e-2, weight
  decay 0.01) on that loss's gradients.
tokenizer/: a small T5 tokenizer: slow/ holds spiece.model (sentencepiece Unigram, 400 pieces,
  pad 0 / eos 1 / unk 2, nmt_nfkc, trained on the first 3000 lines of
  /work/shared/data/multi30k/train.en with one thread) and a tokenizer_config.json naming
  T5Tokenizer with extra_ids 5; fast/ is what T5Tokenizer.from_pretrained(slow/).save_pretrained
  writes (tokenizer.json: Precompiled + WhitespaceSplit/Metaspace + Unigram + "$A </s>", the
  <extra_id_N> tokens at the end of the vocabulary, <extra_id_0> last); golden.json: for each text
  the ids and tokens of tokenizer(text) and decode(ids) with and without skip_special_tokens, from
  both folders (transformers gives the same for both).
t5_translate/: a tiny T5ForConditionalGeneration over that tokenizer (vocab 405, relu, tied),
  briefly trained on TRANSLATE_STEPS copy steps of multi30k English (one thread, seeded), with the
  tokenizer's fast/ files copied in, for tests/cli/test_t5_cli.sh; translate.json: TEXTS_T5 (task
  prefixes in the text) as transformers translates them (tokenizer(texts, padding=True) ->
  generate(max_new_tokens=10) -> decode(skip_special_tokens=True)), greedy and with 2 beams.
buckets.json: T5Attention._relative_position_bucket for relative positions -300..300 under several
  (bidirectional, num_buckets, max_distance).
generate.json: {"cases": [...]} in tests/fixtures/seq2seq_generate/golden.json's format (model
  folder relative to tests/fixtures, generate() kwargs, unpadded sources, output_ids without the
  start token cut after eos, beam scores): greedy and beam search, batched and single, per model.

Regenerate with:  nice -n 19 python3 scripts/reference/gen_t5_goldens.py
(only the tokenizer folders: ... gen_t5_goldens.py tokenizer; only them and t5_translate/:
... gen_t5_goldens.py translate; the tokenizer needs sentencepiece
and protobuf)
(from the repository root; torch and transformers 5.25; deterministic, seeded, no network).
"""
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers as T  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_decoder_goldens import tensor_json  # noqa: E402  (same JSON tensor format)
from gen_seq2seq_generate_goldens import (  # noqa: E402  (the toy training and translate.json)
    generate_rows, train_copy_task, train_translator, write_translate_golden)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "tests", "fixtures", "t5")
S, TGT = 9, 7
GREEDY_NEW = 12
TRAIN_STEPS = 400
PAD, EOS = 0, 1

COMMON = dict(vocab_size=64, d_model=32, pad_token_id=PAD, eos_token_id=EOS,
              decoder_start_token_id=PAD, dropout_rate=0.1)
MODELS = {
    "t5_relu_tied": (dict(COMMON, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                          num_heads=4, relative_attention_num_buckets=8,
                          relative_attention_max_distance=12, feed_forward_proj="relu"),
                     ["shared.weight",
                      "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                      "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                      "encoder.block.1.layer.0.SelfAttention.q.weight",
                      "decoder.block.1.layer.1.EncDecAttention.k.weight",
                      "decoder.block.0.layer.2.DenseReluDense.wi.weight",
                      "encoder.final_layer_norm.weight"]),
    "t5_gated_untied": (dict(COMMON, d_kv=6, d_ff=48, num_layers=2, num_decoder_layers=3,
                             num_heads=4, relative_attention_num_buckets=16,
                             relative_attention_max_distance=20, feed_forward_proj="gated-gelu",
                             tie_word_embeddings=False),
                        ["shared.weight", "lm_head.weight",
                         "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                         "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                         "decoder.block.2.layer.2.DenseReluDense.wi_0.weight",
                         "decoder.block.2.layer.2.DenseReluDense.wi_1.weight",
                         "encoder.block.1.layer.1.DenseReluDense.wo.weight",
                         "decoder.block.1.layer.0.SelfAttention.o.weight"]),
}
BASE_OF = "t5_relu_tied"


def randomize(model, gen, untie):
    """transformers' own initialisation (seeded) with layer norms drawn around 1, and for the
    untied model its own lm_head (N(0, 1) as _init_weights draws an untied head)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
        if untie:
            model.lm_head.weight = torch.nn.Parameter(
                torch.randn(model.lm_head.weight.shape, generator=gen))


def train(model, gen):
    def sample(g):
        n = int(torch.randint(3, 10, (1,), generator=g))
        return torch.randint(2, 60, (n,), generator=g).tolist() + [EOS]
    return train_copy_task(model, gen, TRAIN_STEPS, 1e-2, sample, PAD)


def inputs(gen):
    ids = torch.randint(2, 60, (2, S), generator=gen)
    mask = torch.ones(2, S, dtype=torch.long)
    ids[0, -1] = EOS
    ids[1, -4] = EOS
    ids[1, -3:] = PAD
    mask[1, -3:] = 0
    labels = torch.randint(2, 60, (2, TGT), generator=gen)
    labels[0, -1] = EOS
    labels[1, -3] = EOS
    labels[1, -2:] = -100
    return ids, mask, labels


def load(d):
    m = T.T5ForConditionalGeneration.from_pretrained(d, attn_implementation="eager",
                                                     dtype=torch.float32)
    m.eval()
    return m


def sources(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = [9, 5, 12, 7][i % 4]
        out.append(torch.randint(2, 60, (length - 1,), generator=g).tolist() + [EOS])
    return out


def no_cache(model):
    # transformers 5.25's generate() sizes its cache by num_layers, not num_decoder_layers
    # (IndexError when they differ): such a model generates without a cache (same tokens).
    c = model.config
    return {} if c.num_decoder_layers == c.num_layers else {"use_cache": False}


def generate_case(model, kwargs, srcs):
    return generate_rows(model, srcs, PAD, {EOS}, dict(kwargs, **no_cache(model)))


TOKENIZER_TEXTS = [
    "A man in a red jacket is riding a bike.",
    "Two  dogs play   in the snow near a tree",
    "  leading and trailing spaces  ",
    "A child <extra_id_0> a ball <extra_id_3>, then<extra_id_1>!",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2013 \uff21\uff22 (full width) 12345",
    "Tabs\tand\nnewlines",
    "QUICK BROWN FOX jumps; what's \"that\"?",
    "",
    "</s> inside text <pad> and <unk>",
    # Precompiled (nmt_nfkc) rules on combining sequences and compatibility characters.
    "Cafe\u0301 a\u0308 \u212b \ufb01ne \u2460 x\u00b2 \u3000wide\u00a0space \u2026 e\u0301\u0301",
]


def make_tokenizer():
    import sentencepiece as spm
    d = os.path.join(ROOT, "tokenizer")
    shutil.rmtree(d, ignore_errors=True)
    slow, fast = os.path.join(d, "slow"), os.path.join(d, "fast")
    os.makedirs(slow)
    with open("/work/shared/data/multi30k/train.en", encoding="utf-8") as f:
        lines = f.read().splitlines()[:3000]
    corpus = os.path.join(d, "corpus.tmp")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=os.path.join(slow, "spiece"), vocab_size=400,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
        num_threads=1, normalization_rule_name="nmt_nfkc", minloglevel=2)
    os.remove(corpus)
    os.remove(os.path.join(slow, "spiece.vocab"))
    with open(os.path.join(slow, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "T5Tokenizer", "extra_ids": 5, "eos_token": "</s>",
                   "unk_token": "<unk>", "pad_token": "<pad>"}, f, indent=2)
    tok = T.T5Tokenizer.from_pretrained(slow)
    tok.save_pretrained(fast)
    again = T.AutoTokenizer.from_pretrained(fast)
    cases = []
    for text in TOKENIZER_TEXTS:
        ids = tok(text).input_ids
        assert again(text).input_ids == ids
        cases.append({"text": text, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids),
                      "decoded": tok.decode(ids),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump({"vocab_size": len(tok), "extra_id_0": tok.convert_tokens_to_ids("<extra_id_0>"),
                   "cases": cases}, f, ensure_ascii=False, indent=1)
    print("tokenizer", len(tok), "->", d)


TRANSLATE_STEPS = 150
TEXTS_T5 = ["translate English to German: A man is riding a bike.",
            "summarize: Two dogs play in the snow near a tree."]


def make_translate_fixture():
    tok_dir = os.path.join(ROOT, "tokenizer", "fast")
    d = os.path.join(ROOT, "t5_translate")
    shutil.rmtree(d, ignore_errors=True)
    tok = T.AutoTokenizer.from_pretrained(tok_dir)
    cfg = T.T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1,
                     num_decoder_layers=1, num_heads=4, relative_attention_num_buckets=16,
                     relative_attention_max_distance=32, feed_forward_proj="relu",
                     decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                     eos_token_id=tok.eos_token_id)
    torch.manual_seed(11)
    model = T.T5ForConditionalGeneration(cfg)
    gen = torch.Generator().manual_seed(12)
    with open("/work/shared/data/multi30k/val.en", encoding="utf-8") as f:
        lines = f.read().splitlines()[:300]
    loss = train_translator(model, tok, lines, lines, TRANSLATE_STEPS, gen, 24, lr=1e-2)
    model.save_pretrained(d)
    for f in os.listdir(tok_dir):
        shutil.copy(os.path.join(tok_dir, f), d)
    model = load(d)
    out = write_translate_golden(model, tok, TEXTS_T5, os.path.join(d, "translate.json"),
                                 (("greedy", 1), ("beam2", 2)))
    print("t5 translate (loss", loss, ")", out)


def main():
    os.makedirs(ROOT, exist_ok=True)
    make_tokenizer()
    if sys.argv[1:] == ["tokenizer"]:
        return
    make_translate_fixture()
    if sys.argv[1:] == ["translate"]:
        return
    cases = []
    for name, (kw, grad_names) in MODELS.items():
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(sum(map(ord, name)))
        cfg = T.T5Config(**kw)
        model = T.T5ForConditionalGeneration(cfg)
        untie = kw.get("tie_word_embeddings") is False
        randomize(model, gen, untie)
        final = train(model, gen)
        out_dir = os.path.join(ROOT, name)
        shutil.rmtree(out_dir, ignore_errors=True)
        model.save_pretrained(out_dir)

        model = load(out_dir)
        tied = model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
        assert tied != untie, (name, tied)
        ids, mask, labels = inputs(gen)
        dec_ids = model.prepare_decoder_input_ids_from_labels(labels)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        params = dict(model.named_parameters())
        dec_mask = (labels != -100).long()
        with torch.no_grad():
            masked = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_ids,
                           decoder_attention_mask=dec_mask).logits
            base = T.T5Model.from_pretrained(out_dir, attn_implementation="eager",
                                             dtype=torch.float32).eval()
            base_out = base(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_ids)
            greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=GREEDY_NEW,
                                    num_beams=1, do_sample=False, **no_cache(model))
        g = {"input_ids": tensor_json(ids), "attention_mask": tensor_json(mask),
             "labels": tensor_json(labels), "decoder_input_ids": tensor_json(dec_ids),
             "logits": tensor_json(out.logits), "decoder_attention_mask": tensor_json(dec_mask),
             "logits_decoder_mask": tensor_json(masked),
             "encoder_last_hidden_state": tensor_json(out.encoder_last_hidden_state),
             "decoder_last_hidden_state": tensor_json(base_out.last_hidden_state),
             "greedy": tensor_json(greedy), "loss": out.loss.item(),
             "grads": {n: tensor_json(params[n].grad) for n in grad_names}}
        # One AdamW step on these gradients (every parameter, as a training step takes it).
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
        opt.step()
        g["adamw"] = {n: tensor_json(params[n].detach()) for n in grad_names}
        with open(os.path.join(out_dir, "golden.json"), "w") as f:
            json.dump(g, f)
        print(name, "train loss", final, "golden loss", out.loss.item(), "->", out_dir)
        if name == BASE_OF:
            base_dir = os.path.join(ROOT, "t5_base")
            shutil.rmtree(base_dir, ignore_errors=True)
            base.save_pretrained(base_dir)
            print("T5Model of", name, "->", base_dir)

        model = load(out_dir)
        rel = "t5/" + name
        batch, single = sources(4, 7), sources(1, 8)
        for cname, kwargs, srcs in [
                ("greedy_batched", dict(num_beams=1, max_new_tokens=16), batch),
                ("greedy_single", dict(num_beams=1, max_new_tokens=16), single),
                ("beam4_batched", dict(num_beams=4, max_new_tokens=14), batch),
                ("beam3_lp06_nrs2", dict(num_beams=3, length_penalty=0.6, early_stopping=True,
                                         num_return_sequences=2, max_new_tokens=12), batch),
                ("beam4_single", dict(num_beams=4, max_new_tokens=14), single)]:
            rows, scores = generate_case(model, kwargs, srcs)
            cases.append({"name": name + "/" + cname, "model": rel, "kwargs": kwargs,
                          "sources": srcs, "output_ids": rows, "scores": scores})
            print(" ", cname, [len(r) for r in rows])

    with open(os.path.join(ROOT, "generate.json"), "w") as f:
        json.dump({"cases": cases}, f)
    buckets = []
    for bidi, nb, md in [(True, 32, 128), (False, 32, 128), (True, 8, 12), (False, 8, 12),
                         (True, 16, 20), (False, 16, 20), (True, 6, 7)]:
        rel_pos = torch.arange(-300, 301)
        b = T.models.t5.modeling_t5.T5Attention._relative_position_bucket(
            rel_pos, bidirectional=bidi, num_buckets=nb, max_distance=md)
        buckets.append({"bidirectional": bidi, "num_buckets": nb, "max_distance": md,
                        "first": -300, "buckets": b.tolist()})
    with open(os.path.join(ROOT, "buckets.json"), "w") as f:
        json.dump(buckets, f)
    print("->", ROOT)


if __name__ == "__main__":
    main()
