"""Benchmark: ``ClicktuneEmbeddings.embed_documents`` throughput at the default settings.

Usage: python benchmarks/embed_documents.py [--texts 1000] [--words 200] [--repeats 3]

The texts are SciFact abstracts cut to about ``--words`` words (abstracts shorter than that are skipped),
so they are real paragraphs, not repeated filler. Each precision (fp32, bf16, and what ``auto`` picks on
the CPU it runs on) embeds the same texts ``--repeats`` times, runs interleaved so that other load on the
shared CPU hits every side alike; the table gives the median texts/s and the ratio to fp32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def paragraphs(count: int, words: int) -> list[str]:
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset

    data = BeirDataset.load(BUNDLED_SCIFACT, splits=("test",))
    out = []
    for doc in data.corpus.values():
        tokens = doc.content.split()
        if len(tokens) >= words:
            out.append(" ".join(tokens[:words]))
        if len(out) == count:
            return out
    raise SystemExit(f"SciFact has only {len(out)} documents of >= {words} words; ask for fewer --texts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/embed_documents.json"))
    args = parser.parse_args()

    from clicktune.adapters import ClicktuneSettings
    from clicktune.plugin import ClicktuneEmbeddings

    texts = paragraphs(args.texts, args.words)
    home = Path(tempfile.mkdtemp(prefix="clicktune-bench-"))
    # Default settings throughout, apart from the precision being compared.
    sides = {p: ClicktuneEmbeddings(ClicktuneSettings(home=home, precision=p, progress=False), watch=False)
             for p in ("auto", "fp32", "bf16")}
    resolved = sides["auto"].encoder().precision
    for emb in sides.values():
        emb.embed_documents(texts[:64])  # warm-up: load, first-call allocation
    rates: dict[str, list[float]] = {p: [] for p in sides}
    for rep in range(args.repeats):
        order = list(sides) if rep % 2 == 0 else list(reversed(sides))
        for p in order:
            t = time.perf_counter()
            sides[p].embed_documents(texts)
            rates[p].append(len(texts) / (time.perf_counter() - t))
    for emb in sides.values():
        emb.close()

    med = {p: statistics.median(r) for p, r in rates.items()}
    result = {"texts": len(texts), "words_per_text": args.words, "repeats": args.repeats,
              "auto_resolves_to": resolved, "texts_per_s": rates, "median_texts_per_s": med,
              "ratio_to_fp32": {p: med[p] / med["fp32"] for p in med}}
    print(f"embed_documents, {len(texts)} paragraphs of {args.words} words, median of {args.repeats} runs")
    print(f"{'precision':<22}{'texts/s':>10}{'x fp32':>9}")
    for p in sides:
        label = f"auto (-> {resolved})" if p == "auto" else p
        print(f"{label:<22}{med[p]:>10.1f}{med[p] / med['fp32']:>9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
