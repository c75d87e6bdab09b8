#!/usr/bin/env bash
# lmforge evaluate / inspect / translate --attention-heatmap OUT.png on the tiny trained Marian
# fixture (tests/fixtures/seq2seq_generate/translate): evaluate's BLEU/chrF equal the sacrebleu
# goldens of tests/fixtures/translation_eval (scripts/reference/gen_translation_eval_goldens.py),
# inspect describes the Marian folder, and the PNG heatmap decodes with Python's zlib (an
# independent inflater: every chunk CRC, the scanline count and width of IHDR).
# Usage: test_seq2seq_tools_cli.sh LMFORGE FIXTURES_DIR
set -u
LMF=$1
FIX=$2
M=$FIX/seq2seq_generate/translate
E=$FIX/translation_eval
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# ---- evaluate ----
if "$LMF" evaluate --model "$M" --data "$E/src.en,$E/tgt.fr" --num-beams 3 --max-new-tokens 12 \
  --json --translations-out "$T/hyp.fr" >"$T/eval.json" 2>"$T/err"; then
  ok "evaluate --json (translation)"
else
  bad "evaluate: $(cat "$T/err")"
fi
for k in '"bleu":' '"chrf":' '"eval_loss":' '"eval_gen_len":' '"bleu_signature":"BLEU = '; do
  grep -q "$k" "$T/eval.json" && ok "evaluate reports $k" || bad "evaluate lacks $k: $(cat "$T/eval.json")"
done
if command -v python3 >/dev/null; then
  python3 - "$T/eval.json" "$E/golden.json" "$T/hyp.fr" <<'PY' && ok "evaluate BLEU/chrF equal sacrebleu's (beam 3)" || bad "evaluate scores differ from the golden"
import json, sys
r, g = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
c = [c for c in g["cases"] if c["num_beams"] == 3][0]
assert abs(r["bleu"] - c["bleu"]) < 1e-9 and abs(r["chrf"] - c["chrf"]) < 1e-9, (r, c)
assert open(sys.argv[3]).read().splitlines() == c["hypotheses"]
PY
fi
"$LMF" evaluate --model "$M" --data "$E/src.en,$FIX/marian_tokenizer/corpus.fr" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && grep -q "src.en" "$T/err" && ok "mismatched line counts: exit 2 naming the file" ||
  bad "mismatched line counts: rc $rc, $(cat "$T/err")"

# ---- inspect ----
if "$LMF" inspect "$M" >"$T/inspect.txt" 2>"$T/err"; then
  ok "inspect Marian folder"
else
  bad "inspect: $(cat "$T/err")"
fi
for pat in "MarianMTModel (model_type marian)" "d_model 32" "Marian (source.spm, target.spm, vocab.json"; do
  grep -qF "$pat" "$T/inspect.txt" && ok "inspect shows '$pat'" || bad "inspect lacks '$pat': $(cat "$T/inspect.txt")"
done
"$LMF" inspect "$M" --json | grep -q '"architecture": "MarianMTModel"' && ok "inspect --json" || bad "inspect --json"

# ---- translate --attention-heatmap OUT.png ----
if "$LMF" translate --model "$M" --max-new-tokens 6 --attention-heatmap "$T/att.png" \
  "Two dogs play." "A man rides a bike." >/dev/null 2>"$T/err"; then
  ok "translate --attention-heatmap OUT.png"
else
  bad "translate --attention-heatmap: $(cat "$T/err")"
fi
[ -s "$T/att.png" ] && [ -s "$T/att-2.png" ] && ok "two PNG files" || bad "PNG files missing: $(ls "$T")"
if command -v python3 >/dev/null; then
  python3 - "$T/att.png" "$T/att-2.png" <<'PY' && ok "PNG files decode (zlib, CRCs, size)" || bad "PNG does not decode"
import json, struct, sys, zlib
for f in sys.argv[1:]:
    d = open(f, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n"
    i, chunks = 8, []
    while i < len(d):
        n, = struct.unpack(">I", d[i:i + 4])
        t, body = d[i + 4:i + 8], d[i + 8:i + 8 + n]
        assert zlib.crc32(t + body) & 0xFFFFFFFF == struct.unpack(">I", d[i + 8 + n:i + 12 + n])[0]
        chunks.append((t, body))
        i += 12 + n
    assert [t for t, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
    assert depth == 8 and color == 2 and 100 < w < 4000 and 100 < h < 8000, (w, h)
    raw = zlib.decompress(b"".join(b for t, b in chunks if t == b"IDAT"))
    assert len(raw) == h * (3 * w + 1) and all(raw[y * (3 * w + 1)] == 0 for y in range(h))
    meta = json.loads([b for t, b in chunks if t == b"iTXt"][0].split(b"\0", 5)[-1])
    assert meta["source_tokens"][-1] == "</s>", meta
    px = raw[1:1 + 3 * w]
    assert px[:3] == b"\xff\xff\xff"  # white margin
PY
fi
echo "$fails failure(s)"
[ "$fails" -eq 0 ]
