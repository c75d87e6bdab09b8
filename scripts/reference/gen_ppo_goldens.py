#!/usr/bin/env python3
"""One PPO update exactly as TRL's PPOTrainer (trl 0.23.0, the last TRL release with PPO) computes
it, on a FIXED rollout, for tests/fixtures/ppo/:

- rollout.json: the fixed rollout shared by both model families: "pad_token_id" 1, "eos_token_id" 2,
  "queries" (4 unpadded token-id lists of lengths 3, 5, 4, 2; the trainer sees them left-padded
  with pad 1 to context_length 5, in this order), "responses" (4 x response_length 6 ids as TRL's
  sampling would return them, stop token = eos: row 0 eos at position 2 then pads, row 1 no eos,
  row 2 eos at position 5, row 3 eos at position 0 then pads), "padded_queries", "context_length"
  and "config" (every PPOConfig value used, the derived batch sizes, the score-head seeds and the
  optimizer that the Trainer built);
- step_llama.safetensors / step_gpt2.safetensors for tests/fixtures/decoder/{llama,gpt2}, all four
  models in float64 (the fixture weights are f32, so .double() is exact), eager attention:
    policy (AutoModelForCausalLM) and ref_policy (a second identical load);
    reward model / value model = AutoModelForSequenceClassification(num_labels=1) of the same
    folder whose new "score" head is set with torch.manual_seed(11) resp. 12 then
    weight.normal_(0, 0.5), rounded to f32 (so f32 holds it exactly):
      "reward.score.weight", "value.score.weight"  [1, hidden] (the heads before the update);
  then the REAL trl 0.23 PPOTrainer.train() runs one update (total_episodes 4, batch 4,
  num_mini_batches 2, num_ppo_epochs 4 -> 8 optimizer steps) with trl's batch_generation patched
  to return the fixed rollout (its logits = the policy's forward logits at the response positions
  divided by temperature + 1e-7, which is what the scores of a top_k=0, top_p=1 sampling run are).
  The file holds:
    "rollout.<name>": TRL's locals of train() right before the PPO epochs (f32; masks as 0/1 f32;
      ids int64): query_responses [4,11] (int64), responses [4,6] (int64), postprocessed_responses
      [4,6] (int64), logprobs / ref_logprobs [4,6] (INVALID_LOGPROB 1.0 after the stop token),
      values [4,6] (0 beyond sequence_length+1), scores [4] (missing_eos_penalty applied), kl,
      non_score_reward, rewards, advantages (whitened, 0 on padding), returns [4,6],
      sequence_lengths [4] (int64), contain_eos_token [4], padding_mask, padding_mask_p1 [4,6];
    "perm.<epoch>" (int64 [4]): np.random.permutation of each PPO epoch (minibatch k is
      perm[2k:2k+2]);
    "step.<name>" per optimizer step s = 2*epoch + minibatch (8 steps), captured in train()'s frame
      right before optimizer.step(): inds [8,2] (int64 rollout rows), loss / pg_loss / vf_loss /
      lr [8], new_logprobs [8,2,6] (masked like logprobs), vpred [8,2,6] (masked with
      padding_mask_p1);
    "stats.<name>" [8]: TRL's per-step stats tensors (float32 in TRL itself): approxkl, pg_clipfrac,
      pg_loss, vf_loss, vf_clipfrac, entropy, ratio;
    "metric.<key>" [1]: the metrics TRL logs for the update (objective/kl, objective/entropy, ...,
      val/num_eos_tokens, lr);
    "param.policy.<name>", "param.value.<name>": every parameter of the policy and of the value
      model after the update (f32; named_parameters, so gpt2's tied lm_head is only
      transformer.wte.weight).
  The reference and reward models are checked to be unchanged.
- step2_llama.safetensors (llama only): a separate run of the same setup (same heads, set_seed(42)
  first) but total_episodes 8, so num_total_batches 2: TWO updates, both on queries [0, 1, 2, 3]
  in that order (the unshuffled dataloader cycles) with the same fixed responses, whose logits come
  from the CURRENT policy (so update 2's rollout logprobs are those of the policy after update 1,
  kl / non_score_reward are non-zero, and the first step of update 2 has ratio 1). The linear
  scheduler over num_total_batches 2 gives lr 1e-3 for all 8 steps of update 1 and 5e-4 for all
  8 steps of update 2 (checked; also in the safetensors metadata "run", a JSON string). Update 1
  is checked to equal the one-update run exactly (rollout, perms, pg_loss per step, metrics and
  the f32 parameters after it, which are step_llama's "param.*"). The heads are step_llama's
  "reward.score.weight" / "value.score.weight".
  The file holds:
    "rollout2.<name>": update 2's rollout, the same names, shapes and conventions as "rollout.*";
    "perm1.<epoch>", "perm2.<epoch>" (int64 [4]): the permutations of update 1 (= "perm.*") and 2;
    "metric1.<key>", "metric2.<key>" [1]: the logged metrics of update 1 (= "metric.*") and 2;
    "step2.lr" [8]: the lr of each optimizer step of update 2; "step2.inds" [8,2] (int64),
      "step2.loss" / "step2.pg_loss" / "step2.vf_loss" [8]: as "step.*", for update 2;
    "param.policy.<name>", "param.value.<name>": every parameter after update 2 (f32).
  Reference and reward model are checked to be unchanged after both updates.

Notes on what TRL does here: the optimizer is the Trainer's default (optim adamw_torch_fused ->
torch.optim.AdamW(fused=True), betas (0.9, 0.999), eps 1e-8, weight decay 0.0 in both groups) over
the policy AND the value model (PolicyAndValueWrapper), lr 1e-3 constant for the update (the linear
scheduler, built for num_training_steps = num_total_batches, steps once after each update), and no
gradient clipping. In the one-update run the policy equals the reference, so kl and
non_score_reward are 0 and the first step's ratio is exactly 1. The llama fixture runs in float64
only with patch_llama_eager() below (transformers' eager softmax in float32 turns the
finfo(float64).min mask of left-padding rows into NaN).

trl 0.23 is imported from the folder in env var LMF_TRL_PPO_DIR (default build/trl-0.23 relative to
the repository root), put first on sys.path; make it with
    python3 -m pip install --no-deps --target build/trl-0.23 trl==0.23.0
(its PPO code runs with the installed transformers 5.x / accelerate).

Regenerate with:  python3 scripts/reference/gen_ppo_goldens.py
(from the repository root; needs torch, transformers 5.x, accelerate, datasets, safetensors, numpy
and the trl 0.23 folder above; CPU only, deterministic, no network).
"""
import json
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TRL_DIR = os.environ.get("LMF_TRL_PPO_DIR", os.path.join(ROOT, "build", "trl-0.23"))
if not os.path.isabs(TRL_DIR):
    TRL_DIR = os.path.join(ROOT, TRL_DIR)
if not os.path.isdir(os.path.join(TRL_DIR, "trl")):
    sys.exit(f"no trl 0.23 in {TRL_DIR}: python3 -m pip install --no-deps --target "
             f"build/trl-0.23 trl==0.23.0  (or set LMF_TRL_PPO_DIR)")
sys.path.insert(0, TRL_DIR)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers as T  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from trl import PPOConfig  # noqa: E402
from trl.trainer import ppo_trainer as PT  # noqa: E402

assert trl.__version__ == "0.23.0", (trl.__version__, trl.__file__)

FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIX, "ppo")
PAD, EOS = 1, 2
QUERIES = [[15, 287, 1033],
           [42, 7, 2999, 512, 88],
           [100, 200, 300, 400],
           [1234, 2345]]
RESPONSES = [[57, 910, EOS, PAD, PAD, PAD],        # eos at 2, then pads
             [301, 77, 1500, 23, 845, 66],         # no eos (missing_eos_penalty)
             [12, 640, 2210, 9, 333, EOS],         # eos at the last position
             [EOS, PAD, PAD, PAD, PAD, PAD]]       # eos at 0
R = 6
REWARD_SEED, VALUE_SEED, HEAD_STD = 11, 12, 0.5
CONFIG = dict(total_episodes=4, per_device_train_batch_size=4, gradient_accumulation_steps=1,
              num_mini_batches=2, num_ppo_epochs=4, local_rollout_forward_batch_size=4,
              response_length=R, temperature=0.7, stop_token="eos", missing_eos_penalty=1.0,
              kl_coef=0.05, kl_estimator="k1", cliprange=0.2, vf_coef=0.1, cliprange_value=0.2,
              gamma=1.0, lam=0.95, whiten_rewards=False, learning_rate=1e-3, weight_decay=0.0,
              use_cpu=True, bf16=False, report_to=[], num_sample_generations=0,
              save_strategy="no", seed=42, gradient_checkpointing=False)
METRICS = ["objective/kl", "objective/entropy", "objective/non_score_reward",
           "objective/rlhf_reward", "objective/scores", "policy/approxkl_avg",
           "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg", "val/clipfrac_avg",
           "policy/entropy_avg", "val/ratio", "val/ratio_var", "val/num_eos_tokens", "lr"]
ROLLOUT_F = ["logprobs", "ref_logprobs", "values", "scores", "kl", "non_score_reward", "rewards",
             "advantages", "returns", "padding_mask", "padding_mask_p1", "contain_eos_token"]
ROLLOUT_I = ["query_responses", "responses", "postprocessed_responses", "sequence_lengths"]
STATS = ["approxkl", "pg_clipfrac", "pg_loss", "vf_loss", "vf_clipfrac", "entropy", "ratio"]


def tokenizer():
    import shutil
    d = tempfile.mkdtemp()
    shutil.copy(os.path.join(FIX, "decoder", "llama", "tokenizer.json"), d)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                   "unk_token": "<unk>", "tokenizer_class": "PreTrainedTokenizerFast"}, f)
    tok = T.AutoTokenizer.from_pretrained(d)
    tok.padding_side = "left"
    assert (tok.pad_token_id, tok.eos_token_id) == (PAD, EOS)
    return tok


def padded_queries():
    L = max(len(q) for q in QUERIES)
    return torch.tensor([[PAD] * (L - len(q)) + q for q in QUERIES], dtype=torch.long)


def patch_llama_eager():
    """transformers' llama eager attention adds the float64 mask (finfo(float64).min) and then takes
    the softmax in float32: the mask becomes -inf there and the rows of left-padding positions,
    which attend to nothing, turn into NaN, which then reaches every position of the row through
    0 * NaN in attn @ V. Clamp the mask to finfo(float32).min first: masked scores still get
    exactly 0 weight, fully masked rows become uniform (as in a float32 run), nothing real
    changes."""
    from transformers.models.llama import modeling_llama as ML
    orig = ML.eager_attention_forward
    if getattr(orig, "_lmf_patched", False):
        return

    def eager(module, query, key, value, attention_mask, *a, **kw):
        if attention_mask is not None and attention_mask.dtype == torch.float64:
            attention_mask = attention_mask.clamp(min=torch.finfo(torch.float32).min)
        return orig(module, query, key, value, attention_mask, *a, **kw)

    eager._lmf_patched = True
    ML.eager_attention_forward = eager


def load_causal(folder):
    return T.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").double()


def load_scalar(folder, seed):
    m = T.AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=1, attn_implementation="eager").double()
    torch.manual_seed(seed)
    with torch.no_grad():
        w = torch.empty_like(m.score.weight).normal_(0, HEAD_STD)
        m.score.weight.copy_(w.float().double())  # exactly representable in f32
    assert m.score.bias is None if hasattr(m.score, "bias") else True
    return m


def run(family, total_episodes=4):
    """total_episodes 4: one update -> step_<family>.safetensors; 8: two updates over the same
    queries -> step2_<family>.safetensors (checked against the one-update file for update 1)."""
    nupd = total_episodes // CONFIG["per_device_train_batch_size"]
    assert nupd in (1, 2), total_episodes
    E, NM = CONFIG["num_ppo_epochs"], CONFIG["num_mini_batches"]
    folder = os.path.join(FIX, "decoder", family)
    tok = tokenizer()
    patch_llama_eager()
    T.set_seed(CONFIG["seed"])  # PPOTrainer never calls Trainer.__init__, so seed numpy ourselves
    policy, ref = load_causal(folder), load_causal(folder)
    reward, value = load_scalar(folder, REWARD_SEED), load_scalar(folder, VALUE_SEED)
    heads = {"reward.score.weight": reward.score.weight.detach().float().clone(),
             "value.score.weight": value.score.weight.detach().float().clone()}
    ref0 = {k: v.clone() for k, v in ref.state_dict().items()}
    rew0 = {k: v.clone() for k, v in reward.state_dict().items()}
    pol0 = {k: v.detach().clone() for k, v in policy.named_parameters()}
    val0 = {k: v.detach().clone() for k, v in value.named_parameters()}

    # hidden_states[-1] (what TRL feeds to the score heads) is the final-normed last hidden state
    with torch.no_grad():
        qr = torch.cat([padded_queries(), torch.tensor(RESPONSES)], 1)
        o = PT.forward(getattr(value, value.base_model_prefix), qr, PAD)
        assert torch.isfinite(o.last_hidden_state).all()
        assert torch.equal(o.hidden_states[-1], o.last_hidden_state)
        assert torch.isfinite(PT.forward(policy, qr, PAD).logits).all()

    args = PPOConfig(output_dir=tempfile.mkdtemp(), **dict(CONFIG, total_episodes=total_episodes))
    ds = Dataset.from_dict({"input_ids": QUERIES})
    trainer = PT.PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref,
                            reward_model=reward, train_dataset=ds, value_model=value)
    # fixed query order [0, 1, 2, 3] instead of the shuffled DataLoader
    trainer.dataloader = DataLoader(ds, batch_size=args.local_batch_size, shuffle=False,
                                    collate_fn=trainer.data_collator, drop_last=True)

    seen = {}

    def fixed_generation(model, queries, bs, pad_token_id, generation_config):
        assert torch.equal(queries.cpu(), padded_queries()), queries  # the order TRL saw
        assert abs(generation_config.temperature - (args.temperature + 1e-7)) < 1e-12
        assert generation_config.top_k == 0 and generation_config.top_p == 1.0
        seen["queries"] = queries.clone()
        seen["calls"] = seen.get("calls", 0) + 1
        query_responses = torch.cat([queries, torch.tensor(RESPONSES, device=queries.device)], 1)
        ctx = queries.shape[1]
        with torch.no_grad():
            logits = PT.forward(model, query_responses, pad_token_id).logits[:, ctx - 1:-1]
        return query_responses, logits / generation_config.temperature

    PT.batch_generation = fixed_generation

    rollouts, perms, steps, between = [], [], [], []
    real_perm = np.random.permutation

    def perm(n):
        p = real_perm(n)
        caller = sys._getframe(1)
        if caller.f_code.co_name == "train" and caller.f_code.co_filename == PT.__file__:
            if len(perms) % E == 0:  # first PPO epoch of an update: the rollout is complete
                rollouts.append(dict(caller.f_locals))
                if perms:  # the parameters after the previous update
                    between.append(({k: v.detach().clone() for k, v in policy.named_parameters()},
                                    {k: v.detach().clone() for k, v in value.named_parameters()}))
            perms.append(torch.as_tensor(np.asarray(p), dtype=torch.long))
        return p

    opt = trainer.optimizer
    real_step = opt.step

    def step(*a, **kw):
        f = sys._getframe(1).f_locals
        steps.append({
            "inds": torch.as_tensor(np.asarray(f["micro_batch_inds"]), dtype=torch.long),
            "loss": f["loss"].detach().double().clone(),
            "pg_loss": f["pg_loss"].detach().double().clone(),
            "vf_loss": f["vf_loss"].detach().double().clone(),
            "new_logprobs": f["new_logprobs"].detach().clone(),
            "mb_logprobs": f["mb_logprobs"].detach().clone(),
            "vpred": f["vpred"].detach().clone(),
            "lr": torch.tensor(float(opt.param_groups[0]["lr"]), dtype=torch.float64),
            "lrs": sorted({g["lr"] for g in opt.param_groups}),
        })
        return real_step(*a, **kw)

    opt.step = step

    logged, stats_at_log = [], []
    real_log = trainer.log

    def log(logs, *a, **kw):
        logged.append(dict(logs))
        f = sys._getframe(1).f_locals  # train(): the stats tensors are reused across updates
        stats_at_log.append({k: f[k + "_stats"].detach().clone() for k in STATS})
        return real_log(logs, *a, **kw)

    trainer.log = log

    np.random.permutation = perm
    try:
        trainer.train()
    finally:
        np.random.permutation = real_perm

    assert len(logged) == nupd and len(perms) == E * nupd and len(steps) == E * NM * nupd, \
        (len(logged), len(perms), len(steps))
    assert len(rollouts) == nupd and seen["calls"] == nupd
    if nupd == 2:
        return finish_two_updates(family, args, trainer, policy, value, ref, reward, ref0, rew0,
                                  rollouts, perms, steps, between, logged, stats_at_log)
    rollout = rollouts[0]
    m = logged[0]
    inner = opt.optimizer
    optinfo = {"optim": str(args.optim),
               "class": f"{type(inner).__module__}.{type(inner).__name__}",
               "defaults": {k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in inner.defaults.items()
                            if isinstance(v, (int, float, bool, str, tuple, type(None)))},
               "param_groups": [{"n": len(g["params"]), "weight_decay": g["weight_decay"]}
                                for g in inner.param_groups],
               "lr_scheduler": str(args.lr_scheduler_type),
               "lr_per_step": [s["lrs"] for s in steps],
               "max_grad_norm_config": args.max_grad_norm}

    # checks
    s0 = steps[0]
    assert torch.allclose(s0["new_logprobs"], s0["mb_logprobs"], rtol=0, atol=1e-10), \
        (s0["new_logprobs"] - s0["mb_logprobs"]).abs().max()
    assert all(s["lrs"] == [args.learning_rate] for s in steps), [s["lrs"] for s in steps]
    for k, v in ref.state_dict().items():
        assert torch.equal(v, ref0[k]), k
    for k, v in reward.state_dict().items():
        assert torch.equal(v, rew0[k]), k
    pol_changed = [k for k, v in policy.named_parameters() if not torch.equal(v.detach(), pol0[k])]
    val_changed = [k for k, v in value.named_parameters() if not torch.equal(v.detach(), val0[k])]
    assert pol_changed and val_changed
    assert trainer.model.policy is policy and trainer.model.value_model is value

    g = dict(heads)
    for k in ROLLOUT_F:
        g["rollout." + k] = rollout[k].detach().float().contiguous()
    for k in ROLLOUT_I:
        g["rollout." + k] = rollout[k].detach().long().contiguous()
    for e, p in enumerate(perms):
        g[f"perm.{e}"] = p
    g["step.inds"] = torch.stack([s["inds"] for s in steps])
    for k in ("loss", "pg_loss", "vf_loss", "lr"):
        g["step." + k] = torch.stack([s[k] for s in steps]).float()
    for k in ("new_logprobs", "vpred"):
        g["step." + k] = torch.stack([s[k] for s in steps]).float().contiguous()
    for k in STATS:
        g["stats." + k] = rollout[k + "_stats"].detach().reshape(-1).float().clone()
    for k in METRICS:
        g["metric." + k] = torch.tensor([float(m[k])], dtype=torch.float32)
    for k, v in policy.named_parameters():
        g["param.policy." + k] = v.detach().float().contiguous()
    for k, v in value.named_parameters():
        g["param.value." + k] = v.detach().float().contiguous()
    path = os.path.join(OUT, f"step_{family}.safetensors")
    save_file(g, path)

    # consistency between what TRL logged and what was captured
    assert torch.allclose(g["stats.pg_loss"], g["step.pg_loss"], rtol=1e-6, atol=1e-7)
    assert torch.allclose(g["stats.vf_loss"], g["step.vf_loss"], rtol=1e-6, atol=1e-7)

    print(f"== {family}: {os.path.relpath(path, ROOT)} {os.path.getsize(path)} bytes, "
          f"{len(g)} tensors; optimizer {optinfo['class']} {optinfo['defaults']}")
    print(f"   perms {[p.tolist() for p in perms]}; policy params changed {len(pol_changed)}/"
          f"{len(pol0)}, value params changed {len(val_changed)}/{len(val0)}")
    print(f"   step0 max|new_logprobs - logprobs| "
          f"{(s0['new_logprobs'] - s0['mb_logprobs']).abs().max().item():.3e}")
    print("   step pg_loss", [round(s["pg_loss"].item(), 6) for s in steps])
    print("   step vf_loss", [round(s["vf_loss"].item(), 6) for s in steps])
    for k in METRICS:
        print(f"   {k:28s} {m[k]!r}")
    return optinfo


def finish_two_updates(family, args, trainer, policy, value, ref, reward, ref0, rew0,
                       rollouts, perms, steps, between, logged, stats_at_log):
    """Checks and writes step2_<family>.safetensors for the total_episodes=8 run."""
    from safetensors.torch import load_file
    E, S = CONFIG["num_ppo_epochs"], CONFIG["num_ppo_epochs"] * CONFIG["num_mini_batches"]
    opt, sched = trainer.optimizer, trainer.lr_scheduler
    assert args.num_total_batches == 2, args.num_total_batches
    assert str(args.lr_scheduler_type) in ("linear", "SchedulerType.LINEAR"), args.lr_scheduler_type
    lrs = [s["lrs"] for s in steps]
    lr1, lr2 = args.learning_rate, args.learning_rate * (2 - 1) / 2  # linear, no warmup, 2 batches
    assert all(x == [lr1] for x in lrs[:S]) and all(x == [lr2] for x in lrs[S:]), lrs
    assert [lg["lr"] for lg in logged] == [lr1, lr2], [lg["lr"] for lg in logged]
    assert sched.get_last_lr()[0] == 0.0, sched.get_last_lr()

    # update 1 is the one-update run: same rollout, perms, steps, metrics and resulting params
    one = load_file(os.path.join(OUT, f"step_{family}.safetensors"))
    for k in ROLLOUT_F:
        assert torch.equal(rollouts[0][k].detach().float(), one["rollout." + k]), k
    for k in ROLLOUT_I:
        assert torch.equal(rollouts[0][k].detach().long(), one["rollout." + k]), k
    for e in range(E):
        assert torch.equal(perms[e], one[f"perm.{e}"]), e
    assert torch.equal(torch.stack([s["pg_loss"] for s in steps[:S]]).float(), one["step.pg_loss"])
    for k in METRICS:
        assert torch.tensor([float(logged[0][k])], dtype=torch.float32).equal(one["metric." + k]), k
    pol1, val1 = between[0]
    for k, v in pol1.items():
        assert torch.equal(v.float(), one["param.policy." + k]), k
    for k, v in val1.items():
        assert torch.equal(v.float(), one["param.value." + k]), k

    # update 2: the rollout used the updated policy (logits of the current policy), so kl != 0,
    # and the first step of update 2 reproduces its rollout logprobs (ratio 1)
    r2 = rollouts[1]
    m2 = logged[1]
    assert m2["objective/kl"] != 0.0 and m2["objective/non_score_reward"] != 0.0, m2
    assert not torch.equal(r2["kl"], torch.zeros_like(r2["kl"]))
    assert not torch.equal(r2["logprobs"], rollouts[0]["logprobs"])
    assert torch.equal(r2["ref_logprobs"], rollouts[0]["ref_logprobs"])  # reference unchanged
    assert torch.equal(r2["scores"], rollouts[0]["scores"])  # same reward model and responses
    s8 = steps[S]
    d8 = (s8["new_logprobs"] - s8["mb_logprobs"]).abs().max().item()
    assert d8 <= 1e-10, d8
    ratio0 = stats_at_log[1]["ratio"][0, 0, 0].item()
    assert abs(ratio0 - 1.0) <= 1e-6, ratio0
    for k, v in ref.state_dict().items():
        assert torch.equal(v, ref0[k]), k
    for k, v in reward.state_dict().items():
        assert torch.equal(v, rew0[k]), k
    assert any(not torch.equal(v.detach(), pol1[k]) for k, v in policy.named_parameters())
    assert any(not torch.equal(v.detach(), val1[k]) for k, v in value.named_parameters())
    # the stats TRL logged for update 2 are the captured per-step losses
    assert torch.allclose(stats_at_log[1]["pg_loss"].reshape(-1).double(),
                          torch.stack([s["pg_loss"] for s in steps[S:]]), rtol=1e-6, atol=1e-7)
    assert torch.allclose(stats_at_log[1]["vf_loss"].reshape(-1).double(),
                          torch.stack([s["vf_loss"] for s in steps[S:]]), rtol=1e-6, atol=1e-7)

    g = {}
    for k in ROLLOUT_F:
        g["rollout2." + k] = r2[k].detach().float().contiguous()
    for k in ROLLOUT_I:
        g["rollout2." + k] = r2[k].detach().long().contiguous()
    for u in (0, 1):
        for e in range(E):
            g[f"perm{u + 1}.{e}"] = perms[u * E + e]
        for k in METRICS:
            g[f"metric{u + 1}.{k}"] = torch.tensor([float(logged[u][k])], dtype=torch.float32)
    g["step2.lr"] = torch.stack([s["lr"] for s in steps[S:]]).float()
    g["step2.inds"] = torch.stack([s["inds"] for s in steps[S:]])
    for k in ("loss", "pg_loss", "vf_loss"):
        g["step2." + k] = torch.stack([s[k] for s in steps[S:]]).float()
    for k, v in policy.named_parameters():
        g["param.policy." + k] = v.detach().float().contiguous()
    for k, v in value.named_parameters():
        g["param.value." + k] = v.detach().float().contiguous()
    # one metadata key: safetensors writes several in random (hash) order, not reproducibly
    meta = {"run": json.dumps({"total_episodes": args.total_episodes, "num_total_batches": 2,
                               "lr_scheduler": "linear", "lr_update1": lr1, "lr_update2": lr2})}
    path = os.path.join(OUT, f"step2_{family}.safetensors")
    save_file(g, path, metadata=meta)

    print(f"== {family} (2 updates): {os.path.relpath(path, ROOT)} {os.path.getsize(path)} bytes, "
          f"{len(g)} tensors; update 1 == one-update run (rollout, perms, metrics, params)")
    print(f"   perms1 {[p.tolist() for p in perms[:E]]}; perms2 {[p.tolist() for p in perms[E:]]}")
    print(f"   lr per step update 1 {[x[0] for x in lrs[:S]]}")
    print(f"   lr per step update 2 {[x[0] for x in lrs[S:]]}")
    print(f"   update 2 step0 max|new_logprobs - logprobs| {d8:.3e}, ratio stat {ratio0!r}")
    print("   update 2 step pg_loss", [round(s["pg_loss"].item(), 6) for s in steps[S:]])
    print("   update 2 step vf_loss", [round(s["vf_loss"].item(), 6) for s in steps[S:]])
    for k in METRICS:
        print(f"   {k:28s} {logged[0][k]!r:24} {m2[k]!r}")
    for k in sorted(g):
        print(f"   {k:60s} {str(g[k].dtype)[6:]:8s} {list(g[k].shape)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    infos = {}
    for family in ("llama", "gpt2"):
        infos[family] = run(family)
    run("llama", total_episodes=8)  # after step_llama: update 1 is checked against it
    groups = {f: infos[f].pop("param_groups") for f in infos}
    assert infos["llama"] == infos["gpt2"], infos
    cfg = dict(CONFIG)
    cfg.update(batch_size=4, local_batch_size=4, mini_batch_size=2, local_mini_batch_size=2,
               num_total_batches=1, reward_head_seed=REWARD_SEED, value_head_seed=VALUE_SEED,
               head_init_std=HEAD_STD, dtype="float64", attn_implementation="eager",
               optimizer=dict(infos["llama"], param_groups=groups,
                              note="defaults are torch's; the Trainer's two groups both have "
                                   "weight_decay 0.0; PPOTrainer.train() never clips gradients "
                                   "(max_grad_norm unused); lr is constant within the update"))
    out = {"pad_token_id": PAD, "eos_token_id": EOS, "queries": QUERIES, "responses": RESPONSES,
           "padded_queries": padded_queries().tolist(), "context_length": padded_queries().shape[1],
           "config": cfg}
    with open(os.path.join(OUT, "rollout.json"), "w") as f:  # one line per list, config indented
        f.write("{\n" + ",\n".join(
            f' "{k}": ' + (json.dumps(v, indent=1).replace("\n", "\n ") if k == "config"
                           else json.dumps(v)) for k, v in out.items()) + "\n}\n")


if __name__ == "__main__":
    main()
