#!/usr/bin/env python3
"""SFT packing as TRL 1.16 does it (SFTConfig(packing=True), packing_strategy "bfd", which turns on
padding-free batches), for the C++ SFT packing tests (tests/fixtures/sft_packing/):

- bfd.json: {"cases": {name: case}, "id_scheme", "map_batch_size"}: the pure packing algorithm,
  trl.data_utils.pack_dataset(Dataset.from_dict({"input_ids": ...}), seq_length, strategy="bfd") on
  hand-made length lists. Source sequence k (0-based, in input order) has the ids
  k*1000 + position (position 0..len-1), so every packed id names its source and position. Each
  case: "seq_length", "lengths" (input lengths), "sources" (per packed row, the source indices of
  its sequences in row order), "seq_lengths" (per packed row, the length of each of its
  sequences after truncation to seq_length) and, for the small cases, "packed" (per packed row
  its ids; the big case leaves it out to stay small: row r is the concatenation over
  sources[r][i] = k of k*1000 + 0..seq_lengths[r][i]-1). Cases:
    "assorted_L16": 15 sequences of lengths 1..30 at L=16 (longer ones truncated, keep start);
    "ties_L8" / "ties_L10": many equal lengths (the descending length sort is stable: equal
      lengths keep input order; among bins with the same free space, the one that reached that
      space first is filled first);
    "empty_L4": sequences of length 0 are dropped;
    "batched_L128": 2500 sequences, lengths from numpy default_rng(0).integers(1, 65) (1..64), at
      L=128. pack_dataset runs datasets.map(batched=True) with its default batch_size of 1000, so
      the input is packed in independent chunks of rows 0-999, 1000-1999, 2000-2499: no packed
      row mixes chunks, and the rows of chunk c follow those of chunk c-1
      ("rows_per_map_batch" counts them; "rows_if_one_batch" is how many rows one BFD over all
      2500 would give).
  The script checks every case against a plain re-implementation of that rule (stable sort by
  length, descending; each sequence into the bin with the least free space that still fits it,
  the earliest such bin on ties, else a new bin; per 1000-row chunk).
- examples.json: one SFTTrainer step with packing=True, max_length=48 on the four valid
  alpaca_chat records of tests/fixtures/sft/alpaca.json (prompt-completion, as
  gen_sft_goldens.py makes them; tokenizer = tests/fixtures/decoder/llama/tokenizer.json +
  tests/fixtures/sft/tokenizer_config.json). Their lengths are 50, 46, 41, 34 and their prompts
  26..35 tokens, so no max_length both truncates one and puts two in one bin (two need >= 75),
  and one as small as 24 would keep no completion token at all; 48 truncates the 50-token one
  (keep start: its last 2 tokens "</s>\n" go, 19 of its 21 completion tokens stay) and gives 4
  bins of one sequence each (bins of several sequences are in bfd.json). Packing sorts by the
  truncated length. Keys: "max_length", "packing_strategy", "num_bins"; "train_dataset": the
  packed rows of trainer.train_dataset in order, each {"input_ids", "labels" (-100 outside the
  completion: TRL 1.16 turns its completion_mask into labels before packing, the dataset has no
  completion_mask column), "seq_lengths"}; "batch": the collated batch the step used
  (DataCollatorForLanguageModeling, padding_free: the bins in the sampler's order (seed 42),
  flattened into ONE row, no attention mask; "input_ids", "position_ids" restarting at 0 per
  sequence, "labels" with -100 also where position_ids == 0, "cu_seq_lens", "bin_order" = the
  train_dataset indices in that row); "num_items_in_batch" (trained labels); "loss",
  "grad_norm" (the trainer's, exact doubles); "loss_f64", "grad_norm_f64" (the same step all in
  float64, see below); "padded_loss"; "boundary_check"; "hyperparameters".
- step.safetensors: "loss", "grad_norm" ([1], float32) and "param.<name>" (float32) after
  SFTTrainer's own step: tests/fixtures/decoder/llama in float64, attn_implementation "eager",
  per_device_train_batch_size 4 (= number of bins, so the step sees every bin), lr 1e-3 (linear
  schedule, step 1 uses 1e-3), the Trainer's default AdamW (adamw_torch_fused), weight decay
  0.01, max_grad_norm 1.0, seed 42, bf16 False, use_cpu True, completion_only_loss default (True:
  prompt-completion). Loss = CE summed over the trained tokens / their number (53).
  Precision: SFTTrainer scores the tokens with TRL's fused LM head (trl/kernels/chunked_logprob),
  which accumulates the log-softmax in float32 even for a float64 model, so the trainer's loss /
  grad_norm match the all-float64 step ("loss_f64", "grad_norm_f64": model forward with
  use_cache=False, log_softmax in float64 (transformers' own loss would upcast the logits only to
  float32), clip_grad_norm_, AdamW on the same parameter groups) to ~3e-8 relative, and the
  parameters to ~2.5e-6 absolute (on weights whose gradient is near AdamW's eps).
  Boundary check ("boundary_check"): in float64, the packed padding-free row (no attention mask,
  position_ids, use_cache=False as SFTTrainer calls the model) and the same sequences as separate
  right-padded rows (attention mask) give the same loss (diff ~2e-15) and gradients (~1e-17):
  transformers' eager attention builds a block-diagonal causal mask from position_ids when there
  is no attention mask AND no cache. With the model's default use_cache=True (a DynamicCache is
  made even in training) or with an all-ones attention mask it does not, and the sequences see
  each other ("loss_use_cache_true", "loss_all_ones_attention_mask": 8.3097 vs 8.2459). The
  script fails if the packed and padded losses or gradients differ by more than 1e-10.

Regenerate with:  python3 scripts/reference/gen_sft_packing_goldens.py
(from the repository root; needs torch, transformers 5.x, trl 1.16, datasets, numpy, safetensors;
deterministic, no network).
"""
import json
import os
import shutil
import sys
import tempfile
from collections import deque

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers as T  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402
from trl.data_utils import pack_dataset  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_sft_goldens import user_text, valid_alpaca  # noqa: E402

FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
OUT = os.path.join(FIX, "sft_packing")
MODEL = os.path.join(FIX, "decoder", "llama")
SFT = os.path.join(FIX, "sft")
LR, WD, MAX_GRAD_NORM, MAX_LENGTH, SEED = 1e-3, 0.01, 1.0, 48, 42
MAP_BATCH = 1000  # datasets.Dataset.map's default batch_size


# ---------------------------------------------------------------------------------------------
# 1. the packing algorithm


def trl_pack(lengths, seq_length):
    ids = [[k * 1000 + p for p in range(n)] for k, n in enumerate(lengths)]
    ds = pack_dataset(Dataset.from_dict({"input_ids": ids}), seq_length=seq_length, strategy="bfd")
    rows = ds[:]
    packed = [list(map(int, r)) for r in rows["input_ids"]]
    seq_lengths = [list(map(int, s)) for s in rows["seq_lengths"]]
    sources = []
    for row, sl in zip(packed, seq_lengths):
        assert sum(sl) == len(row)
        src, o = [], 0
        for n in sl:
            k = row[o] // 1000
            assert row[o:o + n] == [k * 1000 + p for p in range(n)], "ids not a source prefix"
            assert n == min(lengths[k], seq_length)
            src.append(k)
            o += n
        sources.append(src)
    return packed, seq_lengths, sources


def ref_bfd_chunk(items, seq_length):
    """Plain BFD on [(index, length)]: stable descending sort, best fit (least free space that
    fits, earliest bin to reach that free space on ties), else a new bin. Truncates to seq_length,
    drops empty sequences."""
    items = [(k, min(n, seq_length)) for k, n in items if n > 0]
    items.sort(key=lambda t: -t[1])  # Python's sort is stable
    bins, by_space = [], {}
    for k, n in items:
        fits = [s for s, q in by_space.items() if q and n <= s]
        if fits:
            s = min(fits)
            b = by_space[s].popleft()
        else:
            s = seq_length
            b = {"ids": [], "lens": []}
            bins.append(b)
        b["ids"].append(k)
        b["lens"].append(n)
        by_space.setdefault(s - n, deque()).append(b)
    return bins


def ref_bfd(lengths, seq_length, batch=MAP_BATCH):
    bins, per_batch = [], []
    for start in range(0, len(lengths), batch):
        chunk = ref_bfd_chunk([(k, lengths[k]) for k in range(start, min(start + batch, len(lengths)))],
                              seq_length)
        per_batch.append(len(chunk))
        bins += chunk
    return [b["ids"] for b in bins], [b["lens"] for b in bins], per_batch


def bfd_cases():
    rng = np.random.default_rng(0)
    cases = {
        "assorted_L16": (16, [3, 16, 7, 20, 1, 9, 5, 12, 16, 2, 30, 8, 4, 11, 6]),
        "ties_L8": (8, [5, 3, 5, 3, 5, 2, 2, 5, 1, 3, 2, 5]),
        "ties_L10": (10, [3, 4, 2, 3, 3, 4, 2, 2, 3, 4, 3, 2, 4, 3, 3, 2, 4, 4, 3, 2, 3, 2, 4, 3]),
        "empty_L4": (4, [0, 4, 1, 0, 2, 3, 0]),
        "batched_L128": (128, [int(x) for x in rng.integers(1, 65, size=2500)]),
    }
    out = {}
    for name, (L, lengths) in cases.items():
        packed, seq_lengths, sources = trl_pack(lengths, L)
        ref_src, ref_sl, per_batch = ref_bfd(lengths, L)
        assert (sources, seq_lengths) == (ref_src, ref_sl), f"{name}: TRL differs from plain BFD"
        case = {"seq_length": L, "lengths": lengths, "sources": sources, "seq_lengths": seq_lengths}
        if len(lengths) > MAP_BATCH:
            case["rows_per_map_batch"] = per_batch
            case["rows_if_one_batch"] = len(ref_bfd(lengths, L, batch=len(lengths))[0])
            mixed = [s for s in sources if len({k // MAP_BATCH for k in s}) > 1]
            assert not mixed
        else:
            case["packed"] = packed
        out[name] = case
        print(f"bfd {name}: {len(lengths)} sequences -> {len(sources)} rows"
              + (f" (per map batch {per_batch}; one batch would give {case['rows_if_one_batch']})"
                 if "rows_per_map_batch" in case else ""))
    return {"id_scheme": "source k, position p -> k*1000 + p", "map_batch_size": MAP_BATCH,
            "strategy": "bfd", "cases": out}


# ---------------------------------------------------------------------------------------------
# 2. one SFTTrainer step with packing


def tokenizer():
    d = tempfile.mkdtemp()
    shutil.copy(os.path.join(MODEL, "tokenizer.json"), d)
    shutil.copy(os.path.join(SFT, "tokenizer_config.json"), d)
    return T.AutoTokenizer.from_pretrained(d)


def load_model():
    return T.AutoModelForCausalLM.from_pretrained(MODEL, attn_implementation="eager").double()


def ce_f64(logits, labels):
    """Token-mean next-token CE over labels != -100, in float64 (transformers' own loss upcasts
    the logits to float32 only)."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != -100
    logp = torch.log_softmax(logits.double(), dim=-1)
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * mask).sum() / mask.sum()


def padded_reference(batch, seq_lens):
    """The sequences of the packed row as separate right-padded rows (attention mask, labels -100
    on padding), float64. Returns (loss, grads)."""
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    rows, o = [], 0
    for n in seq_lens:
        rows.append((ids[o:o + n], labels[o:o + n]))
        o += n
    width = max(seq_lens)
    x = torch.full((len(rows), width), 1, dtype=torch.long)
    y = torch.full((len(rows), width), -100, dtype=torch.long)
    m = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (a, b) in enumerate(rows):
        x[i, :len(a)], y[i, :len(b)], m[i, :len(a)] = a, b, 1
    model = load_model()
    model.train()
    loss = ce_f64(model(input_ids=x, attention_mask=m, use_cache=False).logits, y)
    loss.backward()
    return loss.item(), {k: p.grad.clone() for k, p in model.named_parameters()}


def packed_reference(batch):
    """The packed row through the model's own forward as SFTTrainer calls it (no attention mask,
    position_ids, use_cache=False), float64 CE, then the step as Trainer takes it
    (clip_grad_norm_, AdamW with weight decay on Trainer.get_decay_parameter_names).
    Returns (loss, grads, grad_norm, params after the step)."""
    model = load_model()
    model.train()
    loss = ce_f64(model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                        use_cache=False).logits, batch["labels"])
    loss.backward()
    named = dict(model.named_parameters())
    grads = {k: p.grad.clone() for k, p in named.items()}
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM).item()
    decay = set(T.Trainer.get_decay_parameter_names(None, model))
    groups = [{"params": [p for n, p in named.items() if n in decay], "weight_decay": WD},
              {"params": [p for n, p in named.items() if n not in decay], "weight_decay": 0.0}]
    torch.optim.AdamW(groups, lr=LR).step()
    return loss.item(), grads, grad_norm, {k: p.detach().clone() for k, p in named.items()}


def leak_losses(batch):
    """float64 losses of the packed row when the sequences DO see each other: the model's default
    use_cache=True (a cache turns transformers' packed-sequence detection off), and an all-ones
    attention mask (likewise)."""
    model = load_model()
    model.train()
    with torch.no_grad():
        a = ce_f64(model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits,
                   batch["labels"]).item()
        b = ce_f64(model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False,
                         attention_mask=torch.ones_like(batch["input_ids"])).logits, batch["labels"]).item()
    return a, b


def sft_step():
    torch.manual_seed(0)
    tok = tokenizer()
    rows = [{"prompt": [{"role": "user", "content": user_text(r)}],
             "completion": [{"role": "assistant", "content": r["output"]}]} for r in valid_alpaca()]
    model = load_model()
    probe = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=MAX_LENGTH, packing=True, report_to=[],
                      bf16=False, use_cpu=True)
    num_bins = len(SFTTrainer(model=load_model(), args=probe, train_dataset=Dataset.from_list(rows),
                              processing_class=tok).train_dataset)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=MAX_LENGTH, packing=True, report_to=[],
                     per_device_train_batch_size=num_bins, learning_rate=LR, weight_decay=WD,
                     max_grad_norm=MAX_GRAD_NORM, seed=SEED, bf16=False, use_cpu=True, max_steps=1,
                     save_strategy="no", logging_steps=1, dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    assert trainer.padding_free and trainer.completion_only_loss
    ds = trainer.train_dataset
    packed_rows = [{"input_ids": list(map(int, ds[i]["input_ids"])), "labels": list(map(int, ds[i]["labels"])),
                    "seq_lengths": list(map(int, ds[i]["seq_lengths"]))} for i in range(len(ds))]
    assert len(packed_rows) == num_bins >= 2

    cap = {}
    compute_loss = trainer.compute_loss
    clip = trainer._clip_grad_norm

    def recording_compute_loss(model, inputs, return_outputs=False, num_items_in_batch=None):
        assert "batch" not in cap, "more than one step"
        cap["batch"] = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in inputs.items()}
        cap["num_items_in_batch"] = num_items_in_batch
        out = compute_loss(model, inputs, return_outputs, num_items_in_batch)
        cap["loss"] = (out[0] if return_outputs else out).detach().clone()
        return out

    def recording_clip(model):
        g = clip(model)
        cap["grad_norm"] = g.detach().clone() if torch.is_tensor(g) else torch.tensor(g)
        return g
    trainer.compute_loss = recording_compute_loss
    trainer._clip_grad_norm = recording_clip
    trainer.train()
    b = cap["batch"]
    assert b["input_ids"].shape[0] == 1 and "attention_mask" not in b
    loss, grad_norm = cap["loss"].item(), cap["grad_norm"].item()

    # which bin sits where in the flattened row
    flat = b["input_ids"][0].tolist()
    order, o = [], 0
    while o < len(flat):
        i = next(i for i, r in enumerate(packed_rows)
                 if i not in order and flat[o:o + len(r["input_ids"])] == r["input_ids"])
        order.append(i)
        o += len(packed_rows[i]["input_ids"])
    seq_lens = [n for i in order for n in packed_rows[i]["seq_lengths"]]

    # boundary check: packed padding-free row vs the same sequences as separate padded rows (float64)
    p_loss, p_grads, p_grad_norm, p_params = packed_reference(b)
    r_loss, r_grads = padded_reference(b, seq_lens)
    grad_diff = max((p_grads[k] - r_grads[k]).abs().max().item() for k in p_grads)
    leak_cache, leak_mask = leak_losses(b)
    ok = abs(p_loss - r_loss) < 1e-10 and grad_diff < 1e-10
    # SFTTrainer's fused LM head (trl.kernels.chunked_logprob) accumulates the log-softmax in float32
    # even for a float64 model, so its loss / grads match the float64 forward to float32 rounding only
    params_diff = max((v.detach() - p_params[k]).abs().max().item() for k, v in trainer.model.named_parameters())
    assert abs(loss - p_loss) < 1e-5 * abs(p_loss) and abs(grad_norm - p_grad_norm) < 1e-5 * p_grad_norm
    check = {"packed_f64_loss": p_loss, "padded_rows_f64_loss": r_loss, "packed_minus_padded": p_loss - r_loss,
             "max_abs_grad_diff": grad_diff, "respects_boundaries": ok,
             "loss_use_cache_true": leak_cache, "loss_all_ones_attention_mask": leak_mask,
             "trainer_minus_packed_f64": loss - p_loss, "trainer_grad_norm_minus_f64": grad_norm - p_grad_norm,
             "trainer_params_max_abs_diff_vs_f64_step": params_diff}

    golden = {
        "max_length": MAX_LENGTH, "packing_strategy": "bfd", "num_bins": num_bins,
        "train_dataset": packed_rows,
        "batch": {"input_ids": b["input_ids"][0].tolist(), "position_ids": b["position_ids"][0].tolist(),
                  "labels": b["labels"][0].tolist(), "cu_seq_lens": b["cu_seq_lens_q"].tolist(),
                  "bin_order": order},
        "num_items_in_batch": int(cap["num_items_in_batch"]),
        "loss": loss, "grad_norm": grad_norm, "loss_f64": p_loss, "grad_norm_f64": p_grad_norm,
        "padded_loss": r_loss, "boundary_check": check,
        "hyperparameters": {"lr": LR, "weight_decay": WD, "max_grad_norm": MAX_GRAD_NORM, "seed": SEED,
                            "per_device_train_batch_size": num_bins, "optim": str(args.optim.value),
                            "lr_scheduler_type": str(args.lr_scheduler_type.value)},
    }
    g = {"loss": torch.tensor([loss], dtype=torch.float32),
         "grad_norm": torch.tensor([grad_norm], dtype=torch.float32)}
    for k, v in trainer.model.named_parameters():
        g["param." + k] = v.detach().float().contiguous()
    print(f"sft packing: max_length {MAX_LENGTH}, {num_bins} bins (lengths "
          f"{[r['seq_lengths'] for r in packed_rows]}, step order {order}), row of {len(flat)} tokens; "
          f"trainer loss {loss!r} grad_norm {grad_norm!r}; float64: packed {p_loss!r} padded rows {r_loss!r} "
          f"(diff {p_loss - r_loss:.3e}, max grad diff {grad_diff:.3e}; across boundaries: use_cache=True {leak_cache!r}, ones mask {leak_mask!r}) -> "
          f"{'boundaries respected' if ok else 'CROSS-CONTAMINATION'}; trainer - f64: loss "
          f"{loss - p_loss:.3e}, grad_norm {grad_norm - p_grad_norm:.3e}, params {params_diff:.3e}")
    return golden, g, ok


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "bfd.json"), "w") as f:
        json.dump(bfd_cases(), f, separators=(",", ":"))
        f.write("\n")
    golden, tensors, ok = sft_step()
    with open(os.path.join(OUT, "examples.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")
    save_file(tensors, os.path.join(OUT, "step.safetensors"))
    if not ok:
        sys.exit("boundary check failed: packed padding-free loss differs from the padded rows' loss")


if __name__ == "__main__":
    main()
