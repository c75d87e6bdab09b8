#!/usr/bin/env python3
"""ELECTRA replaced-token-detection pretraining, one step, in PyTorch + transformers: a tiny
generator (ElectraForMaskedLM) and discriminator (ElectraForPreTraining) sharing the embeddings
(word, position, token type, embeddings LayerNorm; the generator's MLM decoder stays tied to the
shared word embeddings), a fixed MLM-masked batch, fixed uniform noise for the Gumbel-max samples
at the masked positions, loss = mlm_loss + 50 * rtd_loss, backward, one torch.optim.AdamW step
(lr 1e-3, weight decay 0.01 on HF Trainer's decay group). Read by tests/train/test_electra.cpp.

Writes tests/fixtures/electra/:
  model/                 the discriminator as transformers saves it (config.json, model.safetensors)
  model/generator/       the generator
  step.safetensors       "batch.<key>" (original_ids, masked_ids, mlm_labels, attention_mask,
                         token_type_ids), "noise" [M, V] f32 (M masked positions in row-major
                         order), "sampled" [M], "disc_labels" [B, T], "loss"/"mlm_loss"/"rtd_loss"/
                         "rtd_accuracy"/"rtd_loss_replaced"/"rtd_loss_original" (the RTD
                         loss over the replaced / the original tokens alone) [1], "grad.<name>" f32 and "step.<name>" f16 = (p_new -
                         p_old) / lr for every parameter of the pair, named "discriminator.<key>" /
                         "generator.<key>" (shared tensors under the discriminator's name);
                         metadata "decay": the names HF Trainer decays.
Computed in float64 (the golden carries no float32 rounding); the Gumbel margins between the
best and second-best candidate are asserted > 1e-3 so the samples are not decided by rounding.

Regenerate with:  python3 scripts/reference/gen_electra_goldens.py
(from the repository root; needs torch, transformers 5.x, safetensors; deterministic, no network).
"""
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "electra")
LR, WD, RTD_WEIGHT = 1e-3, 0.01, 50.0
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
V = 64
LIKELY = 7  # a token the generator favours, placed at some masked positions
COMMON = dict(vocab_size=V, embedding_size=12, max_position_embeddings=32, pad_token_id=PAD,
              initializer_range=0.1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
DISC = dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=30)
GEN = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20)


class Pair(torch.nn.Module):
    def __init__(self, disc, gen):
        super().__init__()
        self.discriminator = disc
        self.generator = gen


def build_models():
    torch.manual_seed(7)
    disc = T.ElectraForPreTraining(T.ElectraConfig(**COMMON, **DISC))
    gen = T.ElectraForMaskedLM(T.ElectraConfig(**COMMON, **GEN))
    with torch.no_grad():  # non-trivial biases and LayerNorm weights
        for p in list(disc.parameters()) + list(gen.parameters()):
            p.add_(torch.randn_like(p) * 0.05)
        gen.generator_lm_head.bias[LIKELY] += 6.0  # so that some samples equal the original
    gen.electra.embeddings = disc.electra.embeddings  # shared, as ELECTRA pretraining does
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    return disc, gen


def make_batch(gen_rng):
    B, S = 3, 10
    lengths = [10, 7, 9]
    ids = torch.full((B, S), PAD)
    mask = torch.zeros((B, S), dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(5, V, (n,), generator=gen_rng)
        ids[b, 0], ids[b, n - 1] = CLS, SEP
        mask[b, :n] = 1
    ids[0, 4] = ids[2, 6] = ids[1, 2] = LIKELY
    labels = torch.full((B, S), -100)
    masked = ids.clone()
    chosen = [(0, 1), (0, 4), (0, 5), (0, 8), (1, 2), (1, 3), (2, 1), (2, 6), (2, 7)]
    kinds = ["mask", "mask", "random", "mask", "keep", "mask", "mask", "mask", "random"]
    for (b, t), kind in zip(chosen, kinds):  # 80/10/10 as HF's collator, fixed here
        labels[b, t] = ids[b, t]
        if kind == "mask":
            masked[b, t] = MASK
        elif kind == "random":
            masked[b, t] = int(torch.randint(5, V, (1,), generator=gen_rng))
    return {"original_ids": ids, "masked_ids": masked, "mlm_labels": labels,
            "attention_mask": mask, "token_type_ids": torch.zeros((B, S), dtype=torch.long)}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    disc, gen = build_models()
    disc.save_pretrained(os.path.join(OUT, "model"))
    gen.save_pretrained(os.path.join(OUT, "model", "generator"))
    pair = Pair(disc, gen).double().train()
    gen_rng = torch.Generator().manual_seed(11)
    batch = make_batch(gen_rng)
    positions = (batch["mlm_labels"] != -100).nonzero().tolist()
    noise = torch.rand((len(positions), V), generator=gen_rng, dtype=torch.float32)

    g_out = gen(input_ids=batch["masked_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"], labels=batch["mlm_labels"])
    gumbel = -torch.log(-torch.log(noise.double() + 1e-9) + 1e-9)
    logits = torch.stack([g_out.logits[b, t].detach() for b, t in positions]) + gumbel
    top2 = logits.topk(2, dim=-1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 1e-3, "Gumbel sample decided by rounding"
    sampled = logits.argmax(-1)
    corrupted = batch["masked_ids"].clone()
    for (b, t), s in zip(positions, sampled.tolist()):
        corrupted[b, t] = s
    disc_labels = (corrupted != batch["original_ids"]).long() * batch["attention_mask"]
    d_out = disc(input_ids=corrupted, attention_mask=batch["attention_mask"],
                 token_type_ids=batch["token_type_ids"], labels=disc_labels)
    loss = g_out.loss + RTD_WEIGHT * d_out.loss
    active = batch["attention_mask"] == 1
    acc = ((d_out.logits > 0).long() == disc_labels)[active].double().mean()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        d_out.logits.detach(), disc_labels.double(), reduction="none")
    rtd_replaced = bce[active & (disc_labels == 1)].mean()
    rtd_original = bce[active & (disc_labels == 0)].mean()
    loss.backward()

    named = list(pair.named_parameters())
    old = {n: p.detach().clone() for n, p in named}
    decay = set(T.Trainer.get_decay_parameter_names(None, pair))
    groups = [{"params": [p for n, p in named if n in decay], "weight_decay": WD},
              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
    tensors = {"batch." + k: v.contiguous() for k, v in batch.items()}
    tensors.update({"noise": noise, "sampled": sampled, "disc_labels": disc_labels,
                    "loss": loss.detach().reshape(1).float(),
                    "mlm_loss": g_out.loss.detach().reshape(1).float(),
                    "rtd_loss": d_out.loss.detach().reshape(1).float(),
                    "rtd_accuracy": acc.reshape(1).float(),
                    "rtd_loss_replaced": rtd_replaced.reshape(1).float(),
                    "rtd_loss_original": rtd_original.reshape(1).float()})
    for n, p in named:
        tensors["grad." + n] = p.grad.float().contiguous()
    torch.optim.AdamW(groups, lr=LR).step()
    for n, p in named:
        tensors["step." + n] = ((p.detach() - old[n]) / LR).half().contiguous()
    save_file(tensors, os.path.join(OUT, "step.safetensors"),
              metadata={"lr": str(LR), "weight_decay": str(WD), "rtd_weight": str(RTD_WEIGHT),
                        "decay": ",".join(sorted(decay))})
    loss = loss.detach()
    print(f"loss {float(loss):.6f} = mlm {float(g_out.loss.detach()):.6f} + 50 x rtd {float(d_out.loss.detach()):.6f};"
          f" rtd accuracy {float(acc):.4f}; replaced {int(disc_labels.sum())} of {len(positions)}"
          f" sampled; {len(named)} parameters")
    total = 0
    for dirpath, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    print(f"wrote {OUT}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
