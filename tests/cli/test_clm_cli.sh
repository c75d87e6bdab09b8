#!/usr/bin/env bash
# lmforge pretrain --recipe gpt end to end on the tiny decoder fixtures: a LLaMA from a config and a
# GPT-2 continued from its folder (outputs, JSON result, run_clm's eval metrics), the saved folder
# generates with lmforge and loads in transformers with the same eval loss, --resume after a kill -9
# equals a straight run byte for byte, and bad input is a one-line error.
# Usage: test_clm_cli.sh LMFORGE_BINARY FIXTURES_DIR REPO_ROOT
set -uo pipefail
bin=$1
fx=$2
root=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=PASSIVE LMFORGE_NUM_THREADS=2 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
fail() { echo "FAIL: $*" >&2; exit 1; }
jget() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])$2)" "$1"; }
corpus="$fx/clm/corpus.txt"

# ---- LLaMA from a config ---------------------------------------------------------------------------
"$bin" pretrain --recipe gpt --config "$fx/decoder/llama/config.json" --tokenizer "$fx/decoder/llama" \
  --train "$corpus" --eval-split 0.1 --block-size 16 --batch-size 4 --max-steps 6 --lr 3e-3 \
  --logging-steps 1 --eval-steps 3 -o "$tmp/llama" --json > "$tmp/llama.json" 2> "$tmp/llama.err" \
  || fail "pretrain --recipe gpt (llama) exited $?: $(cat "$tmp/llama.err")"
for f in config.json model.safetensors generation_config.json tokenizer.json metrics.jsonl \
         training_curves.html; do
  [[ -f "$tmp/llama/$f" ]] || fail "pretrain --recipe gpt did not write $f"
done
python3 - "$tmp/llama" "$tmp/llama.json" <<'PY' || fail "llama outputs"
import json, math, sys
d, r = sys.argv[1], json.loads(open(sys.argv[2]).read())
assert r["global_step"] == 6, r
e = r["final_eval"]
assert abs(e["eval_perplexity"] - math.exp(e["eval_loss"])) < 1e-6 * e["eval_perplexity"], e
assert 0 <= e["eval_accuracy"] <= 1, e
cfg = json.load(open(d + "/config.json"))
assert cfg["architectures"] == ["LlamaForCausalLM"], cfg["architectures"]
logs = [json.loads(l) for l in open(d + "/metrics.jsonl")]
losses = [l["loss"] for l in logs if "loss" in l and "learning_rate" in l]
assert len(losses) == 6 and losses[-1] < losses[0], losses
assert sum("eval_loss" in l for l in logs) >= 2, logs
PY
# the saved folder generates
"$bin" generate --model "$tmp/llama" --max-new-tokens 5 "First Citizen:" > "$tmp/gen.txt" \
  2> "$tmp/gen.err" || fail "generate on the trained folder exited $?: $(cat "$tmp/gen.err")"
[[ -s "$tmp/gen.txt" ]] || fail "generate printed nothing"

# transformers loads it and gets the same held-out loss (when the reference stack is installed)
if python3 -c "import torch, transformers" 2>/dev/null; then
  python3 "$root/scripts/reference/gen_clm_train_goldens.py" --check-folder "$tmp/llama" "$corpus" \
    0.1 16 "$(jget "$tmp/llama.json" "['final_eval']['eval_loss']")" \
    || fail "transformers does not load the trained LLaMA folder with the same eval loss"
elif [[ "${LMF_REQUIRE_REFERENCE:-0}" == 1 ]]; then
  fail "torch + transformers are required (LMF_REQUIRE_REFERENCE=1)"
else
  echo "SKIP: transformers check (no torch + transformers)"
fi

# ---- GPT-2 continued from its folder; --resume after kill -9 ----------------------------------------
gpt=(pretrain --recipe gpt --model "$fx/decoder/gpt2" --train "$corpus" --eval-split 0.1
     --block-size 16 --batch-size 2 --lr 1e-3 --logging-steps 5 --seed 3 --json)
"$bin" "${gpt[@]}" -o "$tmp/straight" --max-steps 1200 --save-steps 300 --save-total-limit 0 \
  > "$tmp/straight.json" 2> "$tmp/straight.err" || fail "gpt2 straight run: $(cat "$tmp/straight.err")"
[[ $(jget "$tmp/straight.json" "['global_step']") == 1200 ]] || fail "gpt2 global_step"
cfg_arch=$(python3 -c "import json; print(json.load(open('$tmp/straight/config.json'))['architectures'][0])")
[[ "$cfg_arch" == GPT2LMHeadModel ]] || fail "gpt2 architecture $cfg_arch"
# kill -9 once a checkpoint exists (when the run is not already over), then resume
"$bin" "${gpt[@]}" -o "$tmp/killed" --max-steps 1200 --save-steps 300 \
  --save-total-limit 0 > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 3000); do
  [[ -f "$tmp/killed/checkpoint-300/trainer_state.json" ]] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
if kill -9 $pid 2>/dev/null; then echo "killed the run after checkpoint-300"; fi
wait $pid 2>/dev/null
# as if killed right after checkpoint-300, whatever the race left
find "$tmp/killed" -maxdepth 1 -name 'checkpoint-*' ! -name checkpoint-300 -exec rm -rf {} +
rm -f "$tmp/killed/model.safetensors"
[[ -d "$tmp/killed/checkpoint-300" ]] || fail "no checkpoint-300 before the kill"
"$bin" "${gpt[@]}" -o "$tmp/killed" --max-steps 1200 --save-steps 300 --save-total-limit 0 --resume \
  > "$tmp/resume.json" 2> "$tmp/resume.err" || fail "--resume exited $?: $(cat "$tmp/resume.err")"
cmp -s "$tmp/killed/model.safetensors" "$tmp/straight/model.safetensors" \
  || fail "resumed GPT-2 differs from the straight run"

# ---- finetune --task sft: chat records with a chat template given by file -------------------------
tokdir="$tmp/sft_tok"
mkdir -p "$tokdir"
cp "$fx/decoder/llama/tokenizer.json" "$tokdir/"
python3 - "$fx/sft/tokenizer_config.json" "$tokdir" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
open(sys.argv[2] + "/chat.jinja", "w").write(c.pop("chat_template"))
json.dump(c, open(sys.argv[2] + "/tokenizer_config.json", "w"))
PY
"$bin" finetune --task sft --model "$fx/decoder/llama" --tokenizer "$tokdir" \
  --chat-template "$tokdir/chat.jinja" --train "$fx/sft/chat.jsonl" --eval "$fx/sft/alpaca.json" \
  --batch-size 2 --max-steps 3 --lr 3e-3 --logging-steps 1 -o "$tmp/sft" --json > "$tmp/sft.json" \
  2> "$tmp/sft.err" || fail "finetune --task sft exited $?: $(cat "$tmp/sft.err")"
for f in config.json model.safetensors chat_template.jinja tokenizer.json metrics.jsonl; do
  [[ -f "$tmp/sft/$f" ]] || fail "sft did not write $f"
done
python3 - "$tmp/sft.json" <<'PY' || fail "sft result"
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert r["global_step"] == 3 and "eval_loss" in r["final_eval"], r
PY
"$bin" generate --model "$tmp/sft" --chat --max-new-tokens 4 "Name a fruit." > /dev/null 2> "$tmp/gen.err" \
  || fail "chat with the SFT folder: $(cat "$tmp/gen.err")"
# --packing: the Alpaca examples in bins of 64 tokens (TRL's bfd), one optimizer step per 2 bins
"$bin" finetune --task sft --model "$fx/decoder/llama" --tokenizer "$tokdir" \
  --chat-template "$tokdir/chat.jinja" --train "$fx/sft/alpaca.json" --packing --max-length 64 \
  --batch-size 2 --max-steps 1 -o "$tmp/sft_pack" > "$tmp/pack.out" 2> "$tmp/pack.err" \
  || fail "sft --packing: $(cat "$tmp/pack.err")"
grep -q "packed (bfd) into [0-9]* rows of up to 64 tokens" "$tmp/pack.out" \
  || fail "sft --packing report: $(cat "$tmp/pack.out")"
expect_error_sft() { "$bin" finetune --task sft --model "$fx/decoder/llama" "$@" -o "$tmp/x" \
  > /dev/null 2> "$tmp/err" && fail "expected an sft error for: $*"; cat "$tmp/err"; }
expect_error_sft --tokenizer "$tokdir" --train "$fx/sft/chat.jsonl" | grep -q -- "--chat-template" \
  || fail "sft without a chat template: $(cat "$tmp/err")"
expect_error_sft --tokenizer "$tokdir" --chat-template "$tokdir/chat.jinja" --strict-data \
  --train "$fx/sft/chat.jsonl" | grep -q "chat.jsonl:3" || fail "--strict-data: $(cat "$tmp/err")"

# ---- LoRA: sft --use-peft, merge-lora, generate --lora; PEFT loads the adapter ----------------
"$bin" finetune --task sft --model "$fx/decoder/llama" --tokenizer "$tokdir" \
  --chat-template "$tokdir/chat.jinja" --train "$fx/sft/alpaca.json" --lora-r 4 --lora-alpha 8 \
  --lora-target q_proj,v_proj --batch-size 2 --max-steps 3 --lr 1e-2 -o "$tmp/lora" --json \
  > "$tmp/lora.json" 2> "$tmp/lora.err" || fail "sft --lora-r exited $?: $(cat "$tmp/lora.err")"
for f in adapter_config.json adapter_model.safetensors tokenizer.json chat_template.jinja; do
  [[ -f "$tmp/lora/$f" ]] || fail "sft LoRA did not write $f"
done
[[ -f "$tmp/lora/model.safetensors" ]] && fail "sft LoRA wrote a full model"
"$bin" merge-lora --lora "$tmp/lora" --model "$fx/decoder/llama" -o "$tmp/merged" > /dev/null \
  2> "$tmp/merge.err" || fail "merge-lora exited $?: $(cat "$tmp/merge.err")"
a=$("$bin" generate --model "$fx/decoder/llama" --lora "$tmp/lora" --max-new-tokens 6 --json "Name a fruit." 2>/dev/null \
  | python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['output_ids'])")
b=$("$bin" generate --model "$tmp/merged" --max-new-tokens 6 --json "Name a fruit." 2>/dev/null \
  | python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['output_ids'])")
[[ -n "$a" && "$a" == "$b" ]] || fail "generate --lora ($a) differs from the merged folder ($b)"
if python3 -c "import torch, transformers, peft" 2>/dev/null; then
  python3 "$root/scripts/reference/gen_lora_goldens.py" --check-adapter "$tmp/lora" \
    "$fx/decoder/llama" "$tmp/merged" || fail "PEFT does not load the adapter as merged"
elif [[ "${LMF_REQUIRE_REFERENCE:-0}" == 1 ]]; then
  fail "torch + transformers + peft are required (LMF_REQUIRE_REFERENCE=1)"
else
  echo "SKIP: PEFT check (peft not installed)"
fi

# pretrain --recipe gpt with LoRA (continued pretraining of adapters on GPT-2's Conv1D c_attn)
"$bin" pretrain --recipe gpt --model "$fx/decoder/gpt2" --train "$corpus" --block-size 16 \
  --batch-size 2 --max-steps 2 --lora-r 2 -o "$tmp/gpt_lora" > /dev/null 2> "$tmp/gl.err" \
  || fail "pretrain --recipe gpt --lora-r: $(cat "$tmp/gl.err")"
grep -q '"c_attn"' "$tmp/gpt_lora/adapter_config.json" || fail "GPT-2 adapter targets"
grep -q '"fan_in_fan_out": true' "$tmp/gpt_lora/adapter_config.json" || fail "GPT-2 fan_in_fan_out"

# ---- finetune --task reward (RewardTrainer) on hand-written HH-RLHF-style pairs -------------------
rmdir="$tmp/rm_base"
mkdir -p "$rmdir"
cp "$fx/decoder/gpt2/"{config.json,model.safetensors,tokenizer.json} "$rmdir/"
echo '{"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}' > "$rmdir/tokenizer_config.json"
"$bin" finetune --task reward --model "$rmdir" --train "$fx/reward/pairs.jsonl" \
  --eval "$fx/reward/pairs.jsonl" --batch-size 2 --max-steps 2 --lr 1e-3 -o "$tmp/rm" --json \
  > "$tmp/rm.json" 2> "$tmp/rm.err" || fail "finetune --task reward exited $?: $(cat "$tmp/rm.err")"
python3 - "$tmp/rm.json" "$tmp/rm/config.json" <<'PY' || fail "reward outputs"
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
e = r["final_eval"]
assert r["global_step"] == 2 and 0 <= e["eval_accuracy"] <= 1 and "eval_margin" in e, r
cfg = json.load(open(sys.argv[2]))
assert cfg["architectures"] == ["GPT2ForSequenceClassification"] and len(cfg["id2label"]) == 1, cfg
PY
if python3 -c "import torch, transformers" 2>/dev/null; then
  python3 - "$tmp/rm" <<'PY' || fail "transformers does not load the reward model"
import sys, torch, transformers as T
m, info = T.AutoModelForSequenceClassification.from_pretrained(sys.argv[1], output_loading_info=True)
bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
assert not bad, bad
assert m.config.num_labels == 1
out = m(input_ids=torch.tensor([[5, 17, 250, 2]])).logits
assert out.shape == (1, 1) and torch.isfinite(out).all(), out
PY
fi
"$bin" finetune --task reward --model "$rmdir" --train "$fx/reward/pairs.jsonl" --strict-data \
  -o "$tmp/x" > /dev/null 2> "$tmp/err" && fail "reward --strict-data accepted malformed pairs"
grep -q "pairs.jsonl:4" "$tmp/err" || fail "reward --strict-data error: $(cat "$tmp/err")"

# ---- finetune --task dpo (DPOTrainer), full and LoRA --------------------------------------------
"$bin" finetune --task dpo --model "$rmdir" --train "$fx/dpo/pairs.jsonl" --eval "$fx/dpo/pairs.jsonl" \
  --batch-size 2 --max-steps 2 --lr 1e-3 --logging-steps 1 -o "$tmp/dpo" --json > "$tmp/dpo.json" \
  2> "$tmp/dpo.err" || fail "finetune --task dpo exited $?: $(cat "$tmp/dpo.err")"
python3 - "$tmp/dpo.json" "$tmp/dpo/metrics.jsonl" <<'PY' || fail "dpo outputs"
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert r["global_step"] == 2 and "eval_rewards_accuracy" in r["final_eval"], r
logs = [json.loads(l) for l in open(sys.argv[2])]
first = next(l for l in logs if "loss" in l and "rewards_margin" in l)
assert abs(first["loss"] - 0.6931472) < 1e-4, first  # policy = reference at step 1
PY
"$bin" finetune --task dpo --model "$rmdir" --train "$fx/dpo/pairs.jsonl" --lora-r 2 \
  --lora-target c_attn --max-steps 1 -o "$tmp/dpo_lora" > /dev/null 2> "$tmp/dpo.err" \
  || fail "dpo --lora-r: $(cat "$tmp/dpo.err")"
[[ -f "$tmp/dpo_lora/adapter_model.safetensors" ]] || fail "dpo LoRA adapter not written"

# ---- finetune --task ppo (PPOTrainer) with the reward model above ---------------------------------
ppo=(finetune --task ppo --model "$rmdir" --reward-model "$tmp/rm" --train "$fx/reward/pairs.jsonl"
     --batch-size 2 --lr 1e-4 --response-length 6 --stop-token eos --num-ppo-epochs 2)
"$bin" "${ppo[@]}" --eval "$fx/reward/pairs.jsonl" --max-steps 2 -o "$tmp/ppo" --json \
  > "$tmp/ppo.json" 2> "$tmp/ppo.err" || fail "finetune --task ppo exited $?: $(cat "$tmp/ppo.err")"
python3 - "$tmp/ppo.json" "$tmp/ppo/metrics.jsonl" "$tmp/ppo" <<'PY' || fail "ppo outputs"
import json, math, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert r["global_step"] == 2 and "eval_objective/scores" in r["final_eval"], r
logs = [l for l in map(json.loads, open(sys.argv[2])) if "objective/kl" in l]
assert len(logs) == 2, logs  # one line per update
assert abs(logs[0]["objective/kl"]) < 1e-5, logs[0]  # the policy is the reference in update 1
for l in logs:
    for k in ("objective/scores", "objective/entropy", "policy/clipfrac_avg", "loss/value_avg"):
        assert math.isfinite(l[k]), (k, l)
cfg = json.load(open(sys.argv[3] + "/value_model/config.json"))
assert cfg["architectures"] == ["GPT2ForSequenceClassification"], cfg
PY
if python3 -c "import torch, transformers" 2>/dev/null; then
  python3 - "$tmp/ppo" <<'PY' || fail "transformers does not load the PPO outputs"
import sys, torch, transformers as T
for cls, d in ((T.AutoModelForCausalLM, sys.argv[1]),
               (T.AutoModelForSequenceClassification, sys.argv[1] + "/value_model")):
    m, info = cls.from_pretrained(d, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not bad, (d, bad)
    assert torch.isfinite(m(input_ids=torch.tensor([[5, 17, 250, 2]])).logits).all()
PY
fi

# ---- --resume equals a straight run for the other objectives (sft with LoRA, reward, dpo) ----------
resume_check() {  # resume_check NAME FILE ARGS...: 4 steps straight vs 2 + resume, FILE compared
  local name=$1 file=$2; shift 2
  "$bin" "$@" --max-steps 4 --save-steps 2 --save-total-limit 0 -o "$tmp/r_$name" > /dev/null \
    2> "$tmp/r.err" || fail "$name straight run: $(cat "$tmp/r.err")"
  cp "$tmp/r_$name/$file" "$tmp/r_$name.straight"
  rm -rf "$tmp/r_$name/checkpoint-4" "$tmp/r_$name/$file"
  "$bin" "$@" --max-steps 4 --save-steps 2 --save-total-limit 0 -o "$tmp/r_$name" --resume \
    > /dev/null 2> "$tmp/r.err" || fail "$name --resume: $(cat "$tmp/r.err")"
  cmp -s "$tmp/r_$name/$file" "$tmp/r_$name.straight" || fail "$name: resumed run differs"
}
resume_check sft_lora adapter_model.safetensors finetune --task sft --model "$fx/decoder/llama" \
  --tokenizer "$tokdir" --chat-template "$tokdir/chat.jinja" --train "$fx/sft/alpaca.json" \
  --lora-r 4 --lora-dropout 0.1 --batch-size 2 --lr 1e-2
resume_check reward model.safetensors finetune --task reward --model "$rmdir" \
  --train "$fx/reward/pairs.jsonl" --batch-size 2 --lr 1e-3
resume_check dpo model.safetensors finetune --task dpo --model "$rmdir" \
  --train "$fx/dpo/pairs.jsonl" --batch-size 2 --lr 1e-3
resume_check ppo model.safetensors "${ppo[@]}"
cmp -s "$tmp/r_ppo/value_model/model.safetensors" "$tmp/r_ppo/checkpoint-4/value_model/model.safetensors" \
  || fail "ppo: the final value model is not the last checkpoint's"

# ---- bad input -------------------------------------------------------------------------------------
expect_error() {  # expect_error PATTERN ARGS...: non-zero exit, one-line error naming PATTERN
  local pat=$1; shift
  "$bin" "$@" > "$tmp/out" 2> "$tmp/err" && fail "expected an error for: $*"
  grep -q -- "$pat" "$tmp/err" || fail "error for '$*' does not mention '$pat': $(cat "$tmp/err")"
  grep -q "Segmentation\|Aborted\|terminate called" "$tmp/err" && fail "crash for: $*"
  return 0
}
expect_error "recipe gpt" pretrain --recipe bert --model "$fx/decoder/gpt2" --train "$corpus" -o "$tmp/x"
expect_error "positions" pretrain --recipe gpt --model "$fx/decoder/gpt2" --train "$corpus" \
  --block-size 200 -o "$tmp/x"
printf 'ok\ncaf\xe9\n' > "$tmp/latin1.txt"
expect_error "latin1.txt:2" pretrain --recipe gpt --model "$fx/decoder/gpt2" --train "$tmp/latin1.txt" -o "$tmp/x"
expect_error "adapts a trained model" pretrain --recipe gpt --config "$fx/decoder/gpt2/config.json" \
  --tokenizer "$fx/decoder/gpt2" --train "$corpus" --block-size 16 --use-peft -o "$tmp/x"
expect_error "recipe gpt" pretrain --recipe bert --config "$fx/pipelines/bert_nsp/config.json" \
  --tokenizer "$fx/pipelines/bert_nsp" --train "$corpus" --lora-r 4 -o "$tmp/x"
expect_error "model_type" pretrain --recipe gpt --config "$fx/pipelines/bert_nsp/config.json" \
  --tokenizer "$fx/pipelines/bert_nsp" --train "$corpus" -o "$tmp/x"
expect_error "not a reward model" finetune --task ppo --model "$rmdir" --reward-model "$rmdir" \
  --train "$fx/reward/pairs.jsonl" -o "$tmp/x"
expect_error "reward-model" finetune --task ppo --model "$rmdir" --train "$fx/reward/pairs.jsonl" -o "$tmp/x"
expect_error "num-mini-batches" finetune --task ppo --model "$rmdir" --reward-model "$tmp/rm" \
  --train "$fx/reward/pairs.jsonl" --batch-size 3 --num-mini-batches 2 -o "$tmp/x"
echo "cli_clm: all checks passed"
