#!/usr/bin/env python3
"""Trains a byte-level BPE (GPT-2 style) and a Unigram (Metaspace) tokenizer with HF `tokenizers`
on our own corpus and writes them plus goldens (ids, tokens, offsets, decoded text, per-piece
model output) under tests/fixtures/tokenizers/.

Regenerate:  pip install tokenizers sentencepiece==0.1.99 &&
             python scripts/reference/gen_bpe_unigram_goldens.py
(sentencepiece 0.1.99 breaks Viterbi ties like the Debian libsentencepiece 0.1.97 we link;
0.2.x picks other, equally scored segmentations of long repeated runs.)
Inputs: the shared corpus tests/fixtures/tokenizers/corpus.jsonl (one JSON string per line) when
present, plus make_corpus() below (deterministic, 2400 varied lines); training uses both, goldens
sample both. Unigram training is not bit-reproducible (HF hash-map order), so regeneration
rewrites the trained files; the tests only need the committed pair to agree. Outputs (each < 1 MB):
  bpe_tokenizer.json, bpe_goldens.json, unigram_tokenizer.json, unigram_goldens.json,
  unigram_spm.model + unigram_spm_goldens.json (a SentencePiece model and its own encodings)
"""
import json
import os
import random
import sys

os.environ["RAYON_NUM_THREADS"] = "1"  # deterministic Unigram training
from tokenizers import (Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")

EN_WORDS = ("the of and to in is was for that on with as by at from it an be this which or "
            "are have had not but were his their they has been one all would there we when "
            "who will more if no out so said what up its about into than them can only other "
            "new some could time these two may then do first any my now such like our over "
            "man me even most made after also did many before must through back years where "
            "much your way well down should because each just those people how too little "
            "state good very make world still own see men work long get here between both "
            "life being under never day same another know while last might us great old year "
            "off come since against go came right used take three tokenizer tokenization "
            "transformer attention embedding gradient encoder decoder byte pair encoding "
            "international unbelievable antidisestablishmentarianism running jumped quickly "
            "Hello World Paris London Tokyo GPT RoBERTa BERT LLaMA HuggingFace OpenAI").split()
CONTRACTIONS = ["don't", "it's", "we're", "they've", "I'm", "you'll", "he'd", "can't",
                "won't", "isn't", "O'Reilly", "rock'n'roll", "'quoted'", "Ma'am", "y'all"]
ZH = ("我们 今天 天气 很好 中国 北京 上海 人工智能 机器学习 自然语言处理 分词器 模型 训练 数据 "
      "的 是 在 了 和 有 这 个 不 为 们 你 他 她 学习 研究 大学 电脑 程序 测试").split()
JA = ("こんにちは 世界 東京 日本語 の テスト です ます カタカナ ひらがな 漢字 トークナイザー "
      "学習 データ 私 は 猫 が 好き 今日 明日 ありがとう ございます").split()
AR = ("مرحبا بالعالم اللغة العربية هذا اختبار النموذج البيانات الذكاء الاصطناعي كتاب مدرسة "
      "في من على إلى").split()
LATIN = ("café naïve résumé façade jalapeño Zürich São Paulo Ångström crème brûlée "
         "piñata coöperate Łódź Kraków Dvořák Ελληνικά Москва привет мир straße ĳ ﬁne "
         "ｆｕｌｌｗｉｄｔｈ").split()
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "🤖", "✨", "🔥", "👩🏿‍💻", "🙂",
         "🎉", "\u263a\ufe0f", "🧑‍🤝‍🧑"]
CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\u200b", "\u200d", "\ufeff",
           "\ufffd", "\x1c", "\x1f", "\u2028", "\u00ad", "\u202e"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", " \n ",
          "\u2009", "\x0b", "\x0c"]


def sentence(rng, n=None):
    n = n or rng.randint(3, 18)
    ws = []
    for _ in range(n):
        r = rng.random()
        if r < 0.7:
            w = rng.choice(EN_WORDS)
        elif r < 0.8:
            w = rng.choice(CONTRACTIONS)
        elif r < 0.9:
            w = str(rng.choice([rng.randint(0, 99), rng.randint(100, 99999), rng.random() * 1000]))
        else:
            w = rng.choice(LATIN)
        if rng.random() < 0.1:
            w = w.capitalize()
        ws.append(w)
    s = " ".join(ws)
    return s[0].upper() + s[1:] + rng.choice([".", "!", "?", "...", ",", ";", ":", ""])


def make_corpus(n=2400, seed=1234):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        kind = i % 16
        if kind in (0, 1, 2, 3, 4):
            lines.append(sentence(rng))
        elif kind == 5:
            lines.append("".join(rng.choice(ZH) for _ in range(rng.randint(3, 20))) +
                         rng.choice(["。", "，", "！", "？", ""]))
        elif kind == 6:
            lines.append("".join(rng.choice(JA) for _ in range(rng.randint(3, 15))) + "。")
        elif kind == 7:
            lines.append(" ".join(rng.choice(AR) for _ in range(rng.randint(3, 12))))
        elif kind == 8:
            lines.append(" ".join(rng.choice(LATIN + EN_WORDS[:40]) for _ in range(8)))
        elif kind == 9:
            parts = [sentence(rng, 5), rng.choice(EMOJI), rng.choice(EMOJI) * rng.randint(1, 3)]
            rng.shuffle(parts)
            lines.append(" ".join(parts))
        elif kind == 10:
            s = sentence(rng, 6)
            pos = rng.randint(0, len(s))
            lines.append(s[:pos] + rng.choice(CONTROL) + s[pos:] + rng.choice(CONTROL))
        elif kind == 11:
            ws = sentence(rng, 6).split(" ")
            lines.append("".join(w + rng.choice(SPACES) for w in ws))
        elif kind == 12:
            w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(30, 300)))
            lines.append(rng.choice(["", "The word ", "x"]) + w + rng.choice(["", " end", "!"]))
        elif kind == 13:
            host = rng.choice(["example.com", "huggingface.co", "www.wikipedia.org", "a.b.c.io"])
            lines.append(f"See https://{host}/path/{rng.randint(1, 9999)}?q={rng.choice(EN_WORDS)}"
                         f"&lang=en#sec-{rng.randint(1, 9)} or mail me@{host}.")
        elif kind == 14:
            lines.append(" ".join(str(rng.choice([rng.randint(0, 10**9), -rng.randint(1, 99),
                                                  round(rng.uniform(-1e4, 1e4), 3),
                                                  "1,234,567", "3.14159", "2024-01-31", "12:30",
                                                  "৩৪", "٣٤٥", "½", "Ⅻ", "²"]))
                                  for _ in range(rng.randint(2, 10))))
        else:
            lines.append(rng.choice(["", " ", "  leading spaces", "trailing spaces   ", "\t",
                                     "'s 't 're 've 'm 'll 'd", "''''", "a'sb", " 's", "?!...",
                                     "UPPER lower MiXeD", sentence(rng, 2) + "\u0301e\u0301",
                                     "x" * 120, "中文English混合text", "ﬀ ﬃ ™ ℌ ①"]))
    return lines


def load_corpus():
    lines = []
    path = os.path.join(OUT, "corpus.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(l) for l in f if l.strip()]
        print(f"corpus: {path} ({len(lines)} lines) + make_corpus()")
    return lines + make_corpus()


def enc_dict(e):
    return {"ids": e.ids, "type_ids": e.type_ids,
            "offsets": [list(o) for o in e.offsets],
            "special_tokens_mask": e.special_tokens_mask,
            "word_ids": [-1 if w is None else w for w in e.word_ids]}


def model_pieces(tok, texts):
    """Per pre-tokenized piece: what the model alone returns (ids, byte offsets in the piece)."""
    out = []
    seen = set()
    for t in texts:
        n = tok.normalizer.normalize_str(t) if tok.normalizer else t
        for piece, _ in tok.pre_tokenizer.pre_tokenize_str(n):
            if piece in seen:
                continue
            seen.add(piece)
            toks = tok.model.tokenize(piece)
            b = piece.encode("utf-8")
            out.append({"piece": piece, "ids": [x.id for x in toks], "values": [x.value for x in toks],
                        "offsets": [list(x.offsets) for x in toks]})
            assert all(o[1] <= len(b) for o in out[-1]["offsets"])
    return out


def pretok_goldens(tok, texts):
    out = []
    for t in texts:
        n = tok.normalizer.normalize_str(t) if tok.normalizer else t
        out.append({"text": n, "pieces": [[p, list(o)] for p, o in tok.pre_tokenizer.pre_tokenize_str(n)]})
    return out


def encode_goldens(tok, texts, pairs):
    single = []
    for t in texts:
        e = tok.encode(t)
        d = enc_dict(e)
        d["text"] = t
        d["decoded"] = tok.decode(e.ids, skip_special_tokens=True)
        d["decoded_with_special"] = tok.decode(e.ids, skip_special_tokens=False)
        single.append(d)
    pair = []
    for a, b in pairs:
        e = tok.encode(a, b)
        d = enc_dict(e)
        d["text"] = a
        d["pair"] = b
        d["decoded"] = tok.decode(e.ids, skip_special_tokens=True)
        pair.append(d)
    return single, pair


def pick(lines, rng, n):
    idx = sorted(rng.sample(range(len(lines)), min(n, len(lines))))
    return [lines[i] for i in idx]


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
    size = os.path.getsize(path)
    print(f"wrote {path} ({size / 1024:.0f} KiB)")
    assert size < 1_000_000, f"{name} is over 1 MB"


EXTRA = ["", " ", "Hello world", " Hello world", "Hello  world  ", "it's 'S 'Ll we'RE",
         "\t\n \u00a0x\u3000y\u2028z\x85w\x1cv", "don't stop   believing!!!", "😀👍🏽👨‍👩‍👧‍👦",
         "e\u0301 é", "a" * 300, "   ", "x\n\n\ny", "中文 日本語 العربية", "\ufffd\x00\x7f",
         "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛", "1234567890 ٣٤٥ ½", "<s> </s> <unk> <mask> <pad>"]


def bpe(lines, rng):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.save(os.path.join(OUT, "bpe_tokenizer.json"))
    tok = Tokenizer.from_file(os.path.join(OUT, "bpe_tokenizer.json"))
    texts = EXTRA + pick(lines, rng, 450)
    pairs = list(zip(pick(lines, rng, 120), pick(lines, rng, 120))) + [("", "x"), ("a", "")]
    single, pair = encode_goldens(tok, texts, pairs)

    # RoBERTa-style: prefix space and <s> A </s></s> B </s> with trimmed offsets.
    rob = json.loads(tok.to_str())
    rob["pre_tokenizer"] = json.loads(pre_tokenizers.ByteLevel(add_prefix_space=True).__getstate__())
    rob["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", tok.token_to_id("</s>")],
                             "cls": ["<s>", tok.token_to_id("<s>")], "trim_offsets": True,
                             "add_prefix_space": True}
    rtok = Tokenizer.from_str(json.dumps(rob))
    rsingle, rpair = encode_goldens(rtok, texts[:150], pairs[:50])
    write("bpe_goldens.json", {
        "model_pieces": model_pieces(tok, texts[:250]),
        "pretok": pretok_goldens(tok, texts[:250]),
        "single": single, "pair": pair,
        "roberta": {"pre_tokenizer": rob["pre_tokenizer"], "post_processor": rob["post_processor"],
                    "single": rsingle, "pair": rpair},
    })


def unigram(lines, rng):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=2000, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    tok.save(os.path.join(OUT, "unigram_tokenizer.json"))
    tok = Tokenizer.from_file(os.path.join(OUT, "unigram_tokenizer.json"))
    texts = EXTRA + pick(lines, rng, 350)
    pairs = list(zip(pick(lines, rng, 80), pick(lines, rng, 80)))
    single, pair = encode_goldens(tok, texts, pairs)

    # Byte fallback: the same pieces plus <0x00>..<0xFF>, so unknown chars become bytes.
    bf = json.loads(tok.to_str())
    bf["model"]["vocab"] += [[f"<0x{b:02X}>", -30.0] for b in range(256)]
    bf["model"]["byte_fallback"] = True
    bftok = Tokenizer.from_str(json.dumps(bf))
    bsingle, _ = encode_goldens(bftok, texts[:120], [])

    # Metaspace variants: prepend_scheme first / never, split false.
    variants = []
    for scheme, split in (("first", True), ("never", True), ("always", False)):
        v = json.loads(tok.to_str())
        v["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme,
                              "split": split}
        v["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme,
                        "split": split}
        vtok = Tokenizer.from_str(json.dumps(v))
        vs, vp = encode_goldens(vtok, texts[:60], pairs[:10])
        variants.append({"pre_tokenizer": v["pre_tokenizer"], "decoder": v["decoder"],
                         "pretok": pretok_goldens(vtok, texts[:40]), "single": vs, "pair": vp})
    write("unigram_goldens.json", {
        "model_pieces": model_pieces(tok, texts[:200]),
        "pretok": pretok_goldens(tok, texts[:120]),
        "single": single, "pair": pair,
        "byte_fallback": {"single": bsingle},
        "metaspace_variants": variants,
    })


def spm(lines, rng):
    import tempfile
    import sentencepiece as sp
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "c.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(l for l in lines if l.strip()))
        sp.SentencePieceTrainer.train(input=os.path.join(d, "c.txt"), model_prefix=os.path.join(d, "m"),
                                      vocab_size=600, model_type="unigram", byte_fallback=True,
                                      character_coverage=0.98, seed_sentencepiece_size=20000,
                                      num_threads=1, minloglevel=2)
        with open(os.path.join(d, "m.model"), "rb") as f:
            blob = f.read()
    with open(os.path.join(OUT, "unigram_spm.model"), "wb") as f:
        f.write(blob)
    proc = sp.SentencePieceProcessor(model_proto=blob)
    texts = [t for t in EXTRA if "\x00" not in t] + pick(lines, rng, 150)
    out = []
    for t in texts:
        ids = proc.encode(t)
        out.append({"text": t, "ids": ids, "pieces": [proc.id_to_piece(i) for i in ids],
                    "decoded": proc.decode(ids)})
    write("unigram_spm_goldens.json", {"unk_id": proc.unk_id(), "bos_id": proc.bos_id(),
                                       "eos_id": proc.eos_id(), "vocab_size": proc.get_piece_size(),
                                       "encodings": out})


def main():
    lines = load_corpus()
    assert len(lines) >= 2000
    bpe(lines, random.Random(7))
    unigram(lines, random.Random(8))
    spm(lines, random.Random(9))


if __name__ == "__main__":
    sys.exit(main())
