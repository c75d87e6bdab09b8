#!/usr/bin/env python3
"""Writes tiny seeded random MarianMTModel checkpoints (the original encoder-decoder Transformer:
sinusoidal positions, post-norm layers, cross-attention) with golden outputs under
tests/fixtures/marian/<name>/ (config.json, generation_config.json, model.safetensors as
save_pretrained writes them, golden.json), read by tests/models/test_marian.cpp.

Each model is built by transformers (MarianConfig -> MarianMTModel), its parameters redrawn from a
seeded generator (layer-norm weights around 1, biases and final_logits_bias non-zero; the frozen
sinusoidal tables are left as computed), saved with save_pretrained and loaded back with
from_pretrained (eager attention, eval mode, f32), so the goldens come from what is on disk.
  marian:        scale_embedding, swish, shared + tied embeddings (one saved matrix), 2+2 layers.
  marian_untied: no embedding scale, gelu, share_encoder_decoder_embeddings false and
                 tie_word_embeddings false, decoder_vocab_size != vocab_size, 2 encoder and 3
                 decoder layers with different heads and FFN widths.
  marian_shared_untied: share_encoder_decoder_embeddings true but tie_word_embeddings false, relu:
                 transformers 5.25 then ties nothing, so model.shared, both embed_tokens and
                 lm_head are four separate saved matrices (model.shared unused by the forward).

marian_base/ (config.json, model.safetensors): marian_shared_untied loaded and saved as MarianModel,
  whose file (unlike MarianMTModel's) holds encoder/decoder.embed_positions.weight.

golden.json per model:
  input_ids / attention_mask [2, S]: the source, row 1 right-padded (mask 0 at the padding).
  labels [2, T]: targets, row 1 ending in -100; decoder_input_ids = shift_tokens_right(labels,
      pad_token_id, decoder_start_token_id) as MarianMTModel makes them.
  logits [2, T, V], encoder_last_hidden_state [2, S, d_model], decoder_last_hidden_state [2, T,
      d_model] (MarianModel's output); logits_decoder_mask [2, T, V] with decoder_attention_mask
      [2, T] (row 1's last two target positions padded; causal + padding mask); greedy [2, <= 13]:
      generate() (greedy, 12 new tokens, forced EOS off) from decoder_start_token_id, a finished
      row padded with pad_token_id; loss (mean cross entropy, -100 ignored) and grads
      {parameter name: gradient} of a few parameters after loss.backward().

Regenerate with:  python3 scripts/reference/gen_marian_goldens.py
(from the repository root; needs torch and transformers 5.25; deterministic, seeded, no network).
"""
import json
import os
import shutil
import sys

import torch
import transformers as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_decoder_goldens import tensor_json  # noqa: E402  (same JSON tensor format)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "tests", "fixtures", "marian")
S, TGT = 7, 6  # source and target lengths
GREEDY_NEW = 12  # new tokens of the greedy generate() golden
BASE_OF = "marian_shared_untied"  # also saved as a MarianModel folder (marian_base/)

MODELS = {
    "marian": (dict(vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2,
                    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                    decoder_ffn_dim=64, max_position_embeddings=64, scale_embedding=True,
                    activation_function="swish", pad_token_id=99, decoder_start_token_id=99,
                    eos_token_id=0, forced_eos_token_id=0, bos_token_id=None),
               ["model.shared.weight", "model.encoder.layers.0.self_attn.q_proj.weight",
                "model.decoder.layers.1.encoder_attn.k_proj.weight",
                "model.decoder.layers.0.fc1.bias",
                "model.encoder.layers.1.final_layer_norm.weight",
                "model.decoder.layers.1.self_attn.out_proj.weight"]),
    "marian_untied": (dict(vocab_size=100, decoder_vocab_size=80, d_model=32, encoder_layers=2,
                           decoder_layers=3, encoder_attention_heads=4, decoder_attention_heads=2,
                           encoder_ffn_dim=64, decoder_ffn_dim=48, max_position_embeddings=64,
                           scale_embedding=False, activation_function="gelu", pad_token_id=1,
                           decoder_start_token_id=1, eos_token_id=2, forced_eos_token_id=2,
                           share_encoder_decoder_embeddings=False, tie_word_embeddings=False),
                      ["lm_head.weight", "model.decoder.embed_tokens.weight",
                       "model.encoder.embed_tokens.weight",
                       "model.decoder.layers.2.encoder_attn.v_proj.bias",
                       "model.decoder.layers.0.self_attn_layer_norm.bias"]),
    "marian_shared_untied": (dict(vocab_size=60, d_model=16, encoder_layers=1, decoder_layers=1,
                                  encoder_attention_heads=2, decoder_attention_heads=2,
                                  encoder_ffn_dim=32, decoder_ffn_dim=32,
                                  max_position_embeddings=32, scale_embedding=True,
                                  activation_function="relu", pad_token_id=59,
                                  decoder_start_token_id=59, eos_token_id=0,
                                  share_encoder_decoder_embeddings=True,
                                  tie_word_embeddings=False),
                             ["lm_head.weight", "model.encoder.embed_tokens.weight",
                              "model.decoder.embed_tokens.weight"]),
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue  # frozen sinusoids, not saved
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        model.final_logits_bias.copy_(0.1 * torch.randn(model.final_logits_bias.shape,
                                                        generator=gen))


def inputs(gen, cfg):
    pad = cfg.pad_token_id
    ids = torch.randint(3, min(cfg.vocab_size - 1, 90), (2, S), generator=gen)
    mask = torch.ones(2, S, dtype=torch.long)
    ids[0, -1] = cfg.eos_token_id
    ids[1, -3] = cfg.eos_token_id
    ids[1, -2:] = pad
    mask[1, -2:] = 0
    labels = torch.randint(3, min(cfg.decoder_vocab_size - 1, 90), (2, TGT), generator=gen)
    labels[0, -1] = cfg.eos_token_id
    labels[1, -3] = cfg.eos_token_id
    labels[1, -2:] = -100
    return ids, mask, labels


def main():
    torch.manual_seed(0)
    for name, (kw, grad_names) in MODELS.items():
        gen = torch.Generator().manual_seed(sum(map(ord, name)))
        cfg = T.MarianConfig(**kw)
        model = T.MarianMTModel(cfg)
        randomize(model, gen)
        out_dir = os.path.join(ROOT, name)
        shutil.rmtree(out_dir, ignore_errors=True)
        model.save_pretrained(out_dir)

        model = T.MarianMTModel.from_pretrained(out_dir, attn_implementation="eager",
                                                dtype=torch.float32)
        model.eval()
        ids, mask, labels = inputs(gen, cfg)
        dec_ids = model.prepare_decoder_input_ids_from_labels(labels)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        params = dict(model.named_parameters())
        dec_mask = (labels != -100).long()  # row 1: its last two target positions are padding
        with torch.no_grad():
            base = model.model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_ids)
            masked = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_ids,
                           decoder_attention_mask=dec_mask).logits
        g = {"input_ids": tensor_json(ids), "attention_mask": tensor_json(mask),
             "labels": tensor_json(labels), "decoder_input_ids": tensor_json(dec_ids),
             "logits": tensor_json(out.logits),
             "decoder_attention_mask": tensor_json(dec_mask),
             "logits_decoder_mask": tensor_json(masked),
             "encoder_last_hidden_state": tensor_json(out.encoder_last_hidden_state),
             "decoder_last_hidden_state": tensor_json(base.last_hidden_state),
             "greedy": tensor_json(model.generate(input_ids=ids, attention_mask=mask,
                                                  max_new_tokens=GREEDY_NEW, num_beams=1,
                                                  do_sample=False, forced_eos_token_id=None)),
             "loss": out.loss.item(),
             "grads": {n: tensor_json(params[n].grad) for n in grad_names}}
        with open(os.path.join(out_dir, "golden.json"), "w") as f:
            json.dump(g, f)
        print(name, "loss", out.loss.item(), "->", out_dir)
        if name == BASE_OF:
            # MarianModel as transformers saves it: the sinusoidal tables are saved here.
            base_dir = os.path.join(ROOT, "marian_base")
            shutil.rmtree(base_dir, ignore_errors=True)
            T.MarianModel.from_pretrained(out_dir).save_pretrained(base_dir)
            print("MarianModel of", name, "->", base_dir)


if __name__ == "__main__":
    main()
