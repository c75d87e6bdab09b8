#!/usr/bin/env python3
"""ELECTRA pretraining in PyTorch + transformers, the reference side of issue 18's side-by-side
runs: the same data, tokenizer, model shapes, masking, loss and schedule as
`lmforge pretrain --recipe electra`, so that the two runs' curves can be compared step by step.

What it does (each item is what lmforge's ElectraObjective and Trainer do; the random streams
differ, so the curves agree within noise, not bit for bit):
- data: the text file format of `lmforge pretrain` (one sentence per line, a blank line between
  documents), tokenized by the tokenizer folder's BertTokenizerFast without special tokens, packed
  as RoBERTa's FULL-SENTENCES ([CLS] block [SEP], blocks of --max-seq-length - 2 tokens, a [SEP]
  between documents, a sentence is not split unless it is longer than a block);
- models: ElectraForPreTraining from --config, ElectraForMaskedLM --generator-divisor times
  narrower (hidden, heads, FFN) with the discriminator's embedding module (shared) and its output
  layer tied to the shared word embeddings; transformers' initialisation from --seed;
- masking per batch (dynamic): each non-special token chosen with --mlm-probability (at least one
  per batch), then [MASK] / a random id / unchanged with --mask-replace-prob and
  --random-replace-prob;
- generator samples by Gumbel-max from its logits / --generator-temperature at the chosen
  positions (no gradient); the
  discriminator's labels are 1 where the sample differs from the original token;
- loss = mlm_loss + --rtd-weight * rtd_loss (transformers' ElectraForPreTraining BCE over the
  attention mask); AdamW (betas 0.9/0.999, eps 1e-8, no decay on biases and LayerNorm weights),
  linear warm-up and decay, gradient clipping at 1.0 (HF Trainer's defaults); a random order of the
  training blocks per epoch;
- every --eval-steps: eval_mlm_loss, eval_rtd_loss, eval_rtd_loss_replaced/_original,
  eval_rtd_accuracy, eval_rtd_auc over the held-out blocks, masked and sampled from a fixed seed.

Writes one JSON object per logging/eval step to --out (the keys of lmforge's metrics.jsonl).

Usage: python3 scripts/reference/electra_pretrain_ref.py --config scripts/runs/electra_small_config.json \
         --tokenizer models/all-MiniLM-L6-v2 --train data/sst2_electra/train.txt \
         --eval data/sst2_electra/heldout.txt --max-steps 800 --lr 5e-4 --out ref.jsonl
"""
import argparse
import json
import math
import time

import torch
from transformers import BertTokenizerFast, ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining


def read_documents(path):
    docs, cur = [], []
    for line in open(path, encoding="utf-8"):
        t = line.strip()
        if not t:
            if cur:
                docs.append(cur)
                cur = []
        else:
            cur.append(t)
    if cur:
        docs.append(cur)
    return docs


def pack(docs, tok, max_seq_length):
    cls, sep = tok.cls_token_id, tok.sep_token_id
    flat = [s for d in docs for s in d]
    enc = tok(flat, add_special_tokens=False)["input_ids"]
    k = 0
    max_tokens = max_seq_length - 2
    out, block = [], []

    def emit():
        nonlocal block
        if block:
            out.append([cls] + block + [sep])
        block = []

    for d in docs:
        boundary = len(block) > 0
        for _ in d:
            ids = enc[k]
            k += 1
            if not ids:
                continue
            pos = 0
            while pos < len(ids):
                rest = len(ids) - pos
                sepn = 1 if boundary and len(block) > 0 else 0
                if len(block) + sepn + rest <= max_tokens:
                    if sepn:
                        block.append(sep)
                    block.extend(ids[pos:])
                    break
                if not block:
                    block.extend(ids[pos:pos + max_tokens])
                    pos += max_tokens
                emit()
            boundary = False
    emit()
    return out


def make_batch(instances, idx, special, pad, mask_id, vocab, a, g):
    t = max(len(instances[i]) for i in idx)
    ids = torch.full((len(idx), t), pad, dtype=torch.long)
    att = torch.zeros((len(idx), t), dtype=torch.long)
    for r, i in enumerate(idx):
        s = instances[i]
        ids[r, :len(s)] = torch.tensor(s)
        att[r, :len(s)] = 1
    eligible = (att == 1) & ~special[ids]
    chosen = eligible & (torch.rand(ids.shape, generator=g) < a.mlm_probability)
    if not chosen.any():
        cand = eligible.flatten().nonzero().flatten()
        chosen.view(-1)[cand[torch.randint(len(cand), (1,), generator=g)]] = True
    u = torch.rand(ids.shape, generator=g)
    masked = ids.clone()
    masked[chosen & (u < a.mask_replace_prob)] = mask_id
    rnd = chosen & (u >= a.mask_replace_prob) & (u < a.mask_replace_prob + a.random_replace_prob)
    masked[rnd] = torch.randint(vocab, ids.shape, generator=g)[rnd]
    return ids, masked, chosen, att


def run_batch(gen, disc, ids, masked, chosen, att, g, rtd_weight, temperature=1.0):
    tt = torch.zeros_like(ids)
    h = gen.electra(input_ids=masked, attention_mask=att, token_type_ids=tt)[0]
    pos = chosen.nonzero(as_tuple=True)
    logits = gen.generator_lm_head(gen.generator_predictions(h[pos]))
    targets = ids[pos]
    mlm_loss = torch.nn.functional.cross_entropy(logits, targets)
    with torch.no_grad():
        u = torch.rand(logits.shape, generator=g)
        gumbel = -torch.log(-torch.log(u + 1e-9) + 1e-9)
        samples = (logits.detach() / temperature + gumbel).argmax(-1)
    corrupted = ids.clone()
    corrupted[pos] = samples
    labels = ((corrupted != ids) & (att == 1)).long()
    out = disc(input_ids=corrupted, attention_mask=att, token_type_ids=tt, labels=labels)
    rtd_loss = out.loss
    x = out.logits.detach()
    act = att == 1
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, labels.float(), reduction="none")
    rep = act & (labels == 1)
    orig = act & (labels == 0)
    stats = {
        "tokens": int(act.sum()), "masked": int(chosen.sum()), "replaced": int(rep.sum()),
        "correct": int((((x > 0).long() == labels) & act).sum()),
        "bce_replaced": float(bce[rep].sum()), "bce_original": float(bce[orig].sum()),
        "scores": x[act].tolist(), "labels": labels[act].tolist(),
    }
    return mlm_loss + rtd_weight * rtd_loss, mlm_loss, rtd_loss, stats


def roc_auc(scores, labels):
    pairs = sorted(zip(scores, labels))
    pos = rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mean_rank = (i + j + 1) / 2.0
        for k in range(i, j):
            if pairs[k][1]:
                pos += 1
                rank_sum += mean_rank
        i = j
    neg = len(pairs) - pos
    if pos == 0 or neg == 0:
        return None
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--train", default="")
    p.add_argument("--eval", required=True)
    p.add_argument("--out", default="-")
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-steps", type=int, default=800)
    p.add_argument("--logging-steps", type=int, default=25)
    p.add_argument("--eval-steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--generator-divisor", type=int, default=4)
    p.add_argument("--rtd-weight", type=float, default=50.0)
    p.add_argument("--mlm-probability", type=float, default=0.15)
    p.add_argument("--mask-replace-prob", type=float, default=0.8)
    p.add_argument("--random-replace-prob", type=float, default=0.1)
    p.add_argument("--generator-temperature", type=float, default=1.0)
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--eval-only", metavar="DIR",
                   help="no training: evaluate a saved pair (DIR = ElectraForPreTraining, "
                        "DIR/generator = ElectraForMaskedLM, e.g. lmforge's output folder) on --eval "
                        "and print the metrics; --config/--train are then not read")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    tok = BertTokenizerFast.from_pretrained(a.tokenizer)
    heldout = pack(read_documents(a.eval), tok, a.max_seq_length)
    if a.eval_only:
        disc = ElectraForPreTraining.from_pretrained(a.eval_only)
        gen = ElectraForMaskedLM.from_pretrained(a.eval_only + "/generator")
        gen.electra.embeddings = disc.electra.embeddings
        gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
        train = []
    else:
        train = pack(read_documents(a.train), tok, a.max_seq_length)
    cfg = json.load(open(a.config)) if not a.eval_only else {}
    if not a.eval_only:
        dcfg = ElectraConfig(**{k: v for k, v in cfg.items() if k not in ("architectures",)})
        gcfg = ElectraConfig(**{k: v for k, v in cfg.items() if k not in ("architectures",)})
        d = a.generator_divisor
        gcfg.hidden_size = max(dcfg.hidden_size // d, 1)
        gcfg.num_attention_heads = max(dcfg.num_attention_heads // d, 1)
        gcfg.intermediate_size = max(dcfg.intermediate_size // d, 1)
        gcfg.embedding_size = dcfg.embedding_size
        torch.manual_seed(a.seed)
        disc = ElectraForPreTraining(dcfg)
        gen = ElectraForMaskedLM(gcfg)
        gen.electra.embeddings = disc.electra.embeddings  # shared token/position/type embeddings
        gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight

    vocab = disc.config.vocab_size
    special = torch.zeros(vocab, dtype=torch.bool)
    for i in tok.all_special_ids:
        special[i] = True
    pad, mask_id = tok.pad_token_id, tok.mask_token_id

    params, seen = [], set()
    for name, prm in list(disc.named_parameters()) + list(gen.named_parameters()):
        if id(prm) in seen:
            continue
        seen.add(id(prm))
        params.append((name, prm))
    no_decay = lambda n: n.endswith(".bias") or "LayerNorm" in n  # noqa: E731
    opt = torch.optim.AdamW(
        [{"params": [q for n, q in params if not no_decay(n)], "weight_decay": a.weight_decay},
         {"params": [q for n, q in params if no_decay(n)], "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    warmup = math.ceil(a.warmup_ratio * a.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warmup) if s < warmup
        else max(0.0, (a.max_steps - s) / max(1, a.max_steps - warmup)))

    g = torch.Generator().manual_seed(a.seed + 1)
    out = open(a.out, "w") if a.out != "-" else open("/dev/null", "w")

    def evaluate(step):
        gen.eval(), disc.eval()
        ge = torch.Generator().manual_seed(1234)
        tot = {"mlm": 0.0, "rtd": 0.0, "masked": 0, "tokens": 0, "correct": 0, "replaced": 0,
               "bce_replaced": 0.0, "bce_original": 0.0}
        scores, labels = [], []
        with torch.no_grad():
            for s in range(0, len(heldout), a.eval_batch_size):
                idx = list(range(s, min(len(heldout), s + a.eval_batch_size)))
                ids, masked, chosen, att = make_batch(heldout, idx, special, pad, mask_id, vocab, a, ge)
                _, mlm, rtd, st = run_batch(gen, disc, ids, masked, chosen, att, ge, a.rtd_weight,
                                              a.generator_temperature)
                tot["mlm"] += float(mlm) * st["masked"]
                tot["rtd"] += float(rtd) * st["tokens"]
                for k in ("masked", "tokens", "correct", "replaced", "bce_replaced", "bce_original"):
                    tot[k] += st[k]
                scores += st["scores"]
                labels += st["labels"]
        gen.train(), disc.train()
        m = {"step": step, "eval_mlm_loss": tot["mlm"] / tot["masked"],
             "eval_rtd_loss": tot["rtd"] / tot["tokens"],
             "eval_rtd_accuracy": tot["correct"] / tot["tokens"],
             "eval_replaced_fraction": tot["replaced"] / tot["tokens"],
             "eval_rtd_loss_replaced": tot["bce_replaced"] / max(1, tot["replaced"]),
             "eval_rtd_loss_original": tot["bce_original"] / max(1, tot["tokens"] - tot["replaced"]),
             "eval_rtd_auc": roc_auc(scores, labels)}
        m["eval_loss"] = m["eval_mlm_loss"] + a.rtd_weight * m["eval_rtd_loss"]
        out.write(json.dumps(m) + "\n")
        out.flush()
        print(json.dumps(m), flush=True)

    if a.eval_only:
        evaluate(0)
        return
    gen.train(), disc.train()
    order, pos_in_epoch = [], 0
    window = {}
    t0 = time.time()
    tokens_seen = 0
    for step in range(1, a.max_steps + 1):
        for _ in range(a.gradient_accumulation_steps):
            if pos_in_epoch + a.batch_size > len(order):
                order = torch.randperm(len(train), generator=g).tolist()
                pos_in_epoch = 0
            idx = order[pos_in_epoch:pos_in_epoch + a.batch_size]
            pos_in_epoch += a.batch_size
            ids, masked, chosen, att = make_batch(train, idx, special, pad, mask_id, vocab, a, g)
            loss, mlm, rtd, st = run_batch(gen, disc, ids, masked, chosen, att, g, a.rtd_weight,
                                           a.generator_temperature)
            (loss / a.gradient_accumulation_steps).backward()
            tokens_seen += st["tokens"]
            rec = {"loss": loss.item(), "mlm_loss": mlm.item(), "rtd_loss": rtd.item(),
                   "rtd_accuracy": st["correct"] / st["tokens"],
                   "replaced_fraction": st["replaced"] / st["tokens"]}
            if st["replaced"]:
                rec["rtd_loss_replaced"] = st["bce_replaced"] / st["replaced"]
            if st["tokens"] > st["replaced"]:
                rec["rtd_loss_original"] = st["bce_original"] / (st["tokens"] - st["replaced"])
            for k, v in rec.items():
                s, n = window.get(k, (0.0, 0))
                window[k] = (s + v, n + 1)
        torch.nn.utils.clip_grad_norm_([q for _, q in params], 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % a.logging_steps == 0:
            m = {"step": step, "learning_rate": sched.get_last_lr()[0],
                 "tokens_per_second": tokens_seen / (time.time() - t0)}
            m.update({k: s / n for k, (s, n) in window.items()})
            window = {}
            out.write(json.dumps(m) + "\n")
            out.flush()
        if step % a.eval_steps == 0 or step == a.max_steps:
            evaluate(step)


if __name__ == "__main__":
    main()
