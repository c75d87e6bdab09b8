#!/usr/bin/env python3
"""LoRA as PEFT (0.21) trains, saves and merges it, for tests/train/test_lora_train.cpp
(tests/fixtures/lora/):

- <model>_init/: the starting adapter of tests/fixtures/decoder/<model> (llama: q_proj,v_proj;
  gpt2: c_attn, fan_in_fan_out), r 4, lora_alpha 8, dropout 0, made by get_peft_model and saved
  by PeftModel.save_pretrained (adapter_config.json, adapter_model.safetensors) after lora_B is
  redrawn N(0, 0.05) from a seeded generator (PEFT starts B at zero, where A gets no gradient;
  the test loads this adapter, so both sides start from the same non-zero B);
- step_<model>.safetensors: one step on the four Alpaca examples of tests/fixtures/sft/examples.json
  (alpaca_chat) padded by TRL's DataCollatorForLanguageModeling, in float64 with dropout 0:
  "loss", "grad_norm" (global over the adapters, before clipping), "grad.<name>" and
  "param.<name>" (after clip_grad_norm_(1.0) and AdamW(lr 1e-3, weight decay 0.01 as
  Trainer.get_decay_parameter_names) over the adapters only) for every lora_A / lora_B, named as
  lmforge names them (PEFT's key without "base_model.model." and the adapter name).

Also checks an adapter and a merged folder lmforge wrote (tests/cli/test_clm_cli.sh):
  python3 scripts/reference/gen_lora_goldens.py --check-adapter ADAPTER_DIR BASE_DIR MERGED_DIR
PeftModel.from_pretrained(base, ADAPTER_DIR) holds exactly the saved adapter tensors, and its
logits on fixed ids equal transformers' on MERGED_DIR (`lmforge merge-lora`), 1e-4 relative.

Regenerate with:  python3 scripts/reference/gen_lora_goldens.py
(from the repository root; needs torch, transformers 5.x, peft 0.21, trl 1.16, safetensors;
deterministic, no network).
"""
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
OUT = os.path.join(FIX, "lora")
LR, WD, MAX_GRAD_NORM = 1e-3, 0.01, 1.0
TARGETS = {"llama": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}


def base_model(name):
    src = os.path.join(FIX, "decoder", name)
    config = T.AutoConfig.from_pretrained(src)
    for k in ("attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout",
              "attention_dropout"):
        if hasattr(config, k):
            setattr(config, k, 0.0)
    return T.AutoModelForCausalLM.from_pretrained(src, config=config, attn_implementation="eager")


def lmforge_name(peft_name):
    return peft_name.replace("base_model.model.", "", 1).replace(".default", "")


def make(name):
    torch.manual_seed(0)
    model = base_model(name)
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                          target_modules=TARGETS[name], task_type="CAUSAL_LM",
                                          fan_in_fan_out=name == "gpt2"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    init_dir = os.path.join(OUT, f"{name}_init")
    shutil.rmtree(init_dir, ignore_errors=True)
    pm.save_pretrained(init_dir)
    for f in os.listdir(init_dir):
        if f not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(init_dir, f))
    cfg = json.load(open(os.path.join(init_dir, "adapter_config.json")))
    cfg["base_model_name_or_path"] = f"tests/fixtures/decoder/{name}"
    json.dump(cfg, open(os.path.join(init_dir, "adapter_config.json"), "w"), indent=2)

    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    examples = json.load(open(os.path.join(FIX, "sft", "examples.json")))["alpaca_chat"]
    batch = DataCollatorForLanguageModeling(pad_token_id=1)(
        [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
    pm = pm.double()
    pm.train()
    out = pm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
             labels=batch["labels"])
    out.loss.backward()
    trainable = {n: p for n, p in pm.named_parameters() if p.requires_grad}
    g = {"loss": torch.tensor([out.loss.item()], dtype=torch.float32)}
    for n, p in trainable.items():
        g["grad." + lmforge_name(n)] = p.grad.float().contiguous()
    grad_norm = torch.nn.utils.clip_grad_norm_(list(trainable.values()), MAX_GRAD_NORM)
    g["grad_norm"] = torch.tensor([grad_norm.item()], dtype=torch.float32)
    decay = set(T.Trainer.get_decay_parameter_names(None, pm))
    groups = [{"params": [p for n, p in trainable.items() if n in decay], "weight_decay": WD},
              {"params": [p for n, p in trainable.items() if n not in decay], "weight_decay": 0.0}]
    torch.optim.AdamW(groups, lr=LR).step()
    for n, p in trainable.items():
        g["param." + lmforge_name(n)] = p.detach().float().contiguous()
    save_file(g, os.path.join(OUT, f"step_{name}.safetensors"))
    print(f"{name}: {len(trainable)} adapter tensors, loss {out.loss.item():.6f} grad_norm "
          f"{grad_norm.item():.6f}")


def check_adapter(adapter_dir, base_dir, merged_dir):
    base = T.AutoModelForCausalLM.from_pretrained(base_dir)
    pm = PeftModel.from_pretrained(base, adapter_dir).eval()
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    params = {n.replace(".default", ""): p for n, p in pm.named_parameters()}
    for k, v in saved.items():
        assert k in params, f"PEFT has no parameter for {k}"
        assert torch.equal(params[k].detach(), v), f"PEFT loaded {k} differently"
    n_lora = sum(1 for n in params if "lora_" in n)
    assert n_lora == len(saved), f"PEFT has {n_lora} adapter tensors, the file {len(saved)}"
    merged = T.AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    ids = torch.tensor([[5, 17, 250, 31, 9, 1200, 77, 4]])
    with torch.no_grad():
        a = pm(input_ids=ids).logits
        b = merged(input_ids=ids).logits
    rel = ((a - b).norm() / a.norm()).item()
    assert rel < 1e-4, f"PEFT logits differ from the merged folder's by {rel}"
    print(f"PEFT loads {adapter_dir} ({len(saved)} tensors) and its logits equal the merged "
          f"folder's (relative {rel:.2e})")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--check-adapter":
        check_adapter(*sys.argv[2:])
        return
    os.makedirs(OUT, exist_ok=True)
    for name in TARGETS:
        make(name)


if __name__ == "__main__":
    main()
