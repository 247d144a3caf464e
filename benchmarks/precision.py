"""Benchmark: fp32 against bf16 for document encoding, single queries, re-indexing, quality and training.

Usage: python benchmarks/precision.py [--docs 5183] [--query-reps 3] [--train-pairs 300]
                                      [--out benchmarks/results/precision.json]

One run, on the bundled SciFact, fp32 and bf16 interleaved so that other load on the machine hits both
alike (the CPU is shared; compare ratios, not absolute rates):
  encode    the corpus in chunks, each chunk once per precision, order alternating -> docs/s each way
  queries   ClicktuneEmbeddings.embed_query on every test query, precisions in random order per query
            -> p50/p90/p99 each way, and the query vectors used for quality; once more with one torch
            thread (the tail of the default 2-thread pool on a busy machine is thread stalls)
  quality   nDCG@10 / Recall@10 on SciFact test (exact cosine) with the fp32 and the bf16 vectors
  reindex   BlueGreenReindexer.run in the precision ``auto`` resolves to, against bare
            SentenceTransformer.encode in that precision, measured right before and right after it
  training  1 epoch MNRL (batch 32, lr 2e-5, max_seq_length 128) on the same train pairs, fp32 and bf16
            in A-B-B-A order; nDCG@10 of the resulting models (scored in the serving precision)
``--docs N`` keeps every document relevant to a test query plus the first others up to N.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PRECISIONS = ("fp32", "bf16")


def _corpus_subset(data: Any, limit: int | None) -> list[str]:
    """Every doc relevant to a test query, then the rest in corpus order, ``limit`` in all."""
    ids = list(data.corpus)
    if limit is None or limit >= len(ids):
        return ids
    needed = {d for rels in data.qrels["test"].values() for d in rels if d in data.corpus}
    keep = [i for i in ids if i in needed]
    keep += [i for i in ids if i not in needed][: max(0, limit - len(keep))]
    return keep


def _scores(query_vectors: np.ndarray, qids: list[str], corpus: np.ndarray, ids: list[str], relevant: dict) -> dict:
    from clicktune.scheduler.evaluation import ir_metrics

    top = np.argsort(-(query_vectors @ corpus.T), axis=1, kind="stable")[:, :10]
    return ir_metrics({q: [ids[j] for j in top[i]] for i, q in enumerate(qids)}, relevant).as_dict()


def _pct(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {f"p{p}": float(np.percentile(ms, p)) for p in (50, 90, 99)} | {"mean": float(ms.mean())}


def encode_interleaved(encoders: dict, texts: list[str], chunk: int, batch_size: int) -> tuple[dict, dict]:
    """Vectors and docs/s per precision, the two precisions taking turns chunk by chunk."""
    for e in encoders.values():
        e.encode(texts[:batch_size], batch_size=batch_size)  # warm-up: allocator, oneDNN kernels
    seconds = dict.fromkeys(encoders, 0.0)
    parts: dict[str, list[np.ndarray]] = {p: [] for p in encoders}
    for n, start in enumerate(range(0, len(texts), chunk)):
        order = list(encoders) if n % 2 == 0 else list(reversed(encoders))
        for p in order:
            t = time.perf_counter()
            parts[p].append(encoders[p].encode(texts[start : start + chunk], batch_size=batch_size))
            seconds[p] += time.perf_counter() - t
    return {p: np.concatenate(v) for p, v in parts.items()}, {p: len(texts) / s for p, s in seconds.items()}


def query_latency(embeddings: dict, queries: list[str], reps: int, seed: int = 0) -> tuple[dict, dict]:
    """Per precision: embed_query latencies (every rep) and the vectors of the first rep."""
    rng = random.Random(seed)
    for emb in embeddings.values():
        for q in queries[:20]:
            emb.embed_query(q)
    lat: dict[str, list[float]] = {p: [] for p in embeddings}
    vectors: dict[str, list[list[float]]] = {p: [] for p in embeddings}
    for rep in range(reps):
        for q in queries:
            order = list(embeddings)
            rng.shuffle(order)
            for p in order:
                t = time.perf_counter()
                v = embeddings[p].embed_query(q)
                lat[p].append(time.perf_counter() - t)
                if rep == 0:
                    vectors[p].append(v)
    return {p: _pct(v) for p, v in lat.items()}, {p: np.asarray(v, dtype=np.float32) for p, v in vectors.items()}


def reindex_vs_bare(texts: list[str], ids: list[str], precision: str, batch_size: int, work: Path) -> dict:
    """clicktune's own pieces: ingest with the vector store, then a blue-green reindex to a second version."""
    import torch

    from clicktune.adapters import ClicktuneSettings, ModelRegistry
    from clicktune.adapters.models import autocast
    from clicktune.adapters.qdrant import close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.reindex import BlueGreenReindexer

    settings = ClicktuneSettings(home=work, precision=precision, batch_size=batch_size, progress=False)
    registry = ModelRegistry.from_settings(settings)
    registry.bootstrap()
    second = registry.load_model("v0001")  # same architecture, so the same cost; quality is not the point
    with torch.no_grad():
        second[0].auto_model.embeddings.word_embeddings.weight.mul_(1.01)
    registry.register(second, parent="v0001")
    embeddings = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings, log_impressions=False)
    out: dict[str, Any] = {"precision": precision, "docs": len(texts)}
    t = time.perf_counter()
    store.add_texts(texts, ids=ids, batch_size=256)
    out["add_texts_docs_per_s"] = len(texts) / (time.perf_counter() - t)

    encoder = store.handle.encoder("v0002")  # the very model object the reindex will use, loaded now

    def bare() -> float:
        t0 = time.perf_counter()
        with autocast(encoder.precision, encoder.device_type):  # type: ignore[arg-type]
            encoder.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
        return len(texts) / (time.perf_counter() - t0)

    before = bare()
    report = BlueGreenReindexer(store.handle, batch_size=batch_size).run("v0002")
    after = bare()
    out["bare_encode_docs_per_s_before"], out["bare_encode_docs_per_s_after"] = before, after
    out["bare_encode_docs_per_s"] = (before + after) / 2
    out["reindex_docs_per_s"] = len(texts) / report.seconds["total"]
    out["reindex_seconds"] = report.seconds
    out["reindex_vs_bare"] = out["reindex_docs_per_s"] / out["bare_encode_docs_per_s"]
    out["recorded_index_precision"] = next(r for r in registry.describe() if r["version"] == "v0002").get(
        "index_precision"
    )
    embeddings.close()
    close_shared_clients()
    return out


def train_once(base: Any, anchors: list[str], positives: list[str], *, bf16: bool, seq_len: int, seed: int) -> tuple:
    """ClickTrainer's arguments (MNRL, NO_DUPLICATES, warmup 0.1), with or without bf16 mixed precision."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses
    from transformers import set_seed

    set_seed(seed)
    model = copy.deepcopy(base)
    serving_length = model.max_seq_length
    model.max_seq_length = seq_len
    with tempfile.TemporaryDirectory(prefix="clicktune-prec-train-") as output_dir:
        args = SentenceTransformerTrainingArguments(
            output_dir=output_dir, num_train_epochs=1, per_device_train_batch_size=32, learning_rate=2e-5,
            warmup_steps=0.1, batch_sampler=BatchSamplers.NO_DUPLICATES, seed=seed, data_seed=seed,
            save_strategy="no", report_to="none", disable_tqdm=True, dataloader_drop_last=False,
            dataloader_pin_memory=False, bf16=bf16, use_cpu=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=Dataset.from_dict({"anchor": anchors, "positive": positives}),
            loss=losses.MultipleNegativesRankingLoss(model),
        )
        t = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t
    model.max_seq_length = serving_length
    return model, len(anchors) / seconds


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=None, help="corpus size (default: all 5,183)")
    parser.add_argument("--chunk", type=int, default=256, help="docs per interleaved encode chunk")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--query-reps", type=int, default=3, help="passes over the 300 test queries")
    parser.add_argument("--train-pairs", type=int, default=300)
    parser.add_argument("--train-seq-length", type=int, default=128)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/precision.json"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from clicktune.adapters import ClicktuneSettings, ModelRegistry
    from clicktune.adapters.models import VersionEncoder, native_bf16_available, resolve_precision
    from clicktune.plugin import ClicktuneEmbeddings
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset

    started = time.perf_counter()
    data = BeirDataset.load(BUNDLED_SCIFACT)
    ids = _corpus_subset(data, args.docs)
    texts = [data.corpus[i].content for i in ids]
    test = data.split_queries("test")
    qids, queries = list(test), list(test.values())
    relevant = {q: {d for d, g in rels.items() if g > 0} for q, rels in data.qrels["test"].items()}
    work = Path(tempfile.mkdtemp(prefix="clicktune-prec-"))
    chosen = resolve_precision("auto")
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?") if Path("/proc/cpuinfo").exists() else "?"
    out: dict[str, Any] = {
        "docs": len(texts), "test_queries": len(qids), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": cpu, "native_bf16": native_bf16_available(), "auto_resolves_to": chosen,
        "loadavg_start": os.getloadavg()[0],
    }

    # Serving: two ClicktuneEmbeddings over one registry, one per precision, exactly as an app builds them.
    home = work / "serving"
    ModelRegistry.from_settings(ClicktuneSettings(home=home)).bootstrap()
    emb = {p: ClicktuneEmbeddings(ClicktuneSettings(home=home, precision=p, progress=False), watch=False)
           for p in PRECISIONS}
    encoders = {p: e.encoder() for p, e in emb.items()}
    out["max_seq_length"] = encoders["fp32"].model.max_seq_length
    print(f"{len(texts)} docs, {len(qids)} test queries, auto -> {chosen}; encoding both ways ...", flush=True)

    corpus, rates = encode_interleaved(encoders, texts, args.chunk, args.batch_size)
    out["encode_docs_per_s"] = rates
    out["encode_speedup"] = rates["bf16"] / rates["fp32"]
    cos = (corpus["fp32"] * corpus["bf16"]).sum(1)
    out["doc_cosine_bf16_vs_fp32"] = {"mean": float(cos.mean()), "min": float(cos.min())}

    print("single queries ...", flush=True)
    latency, qvec = query_latency(emb, queries, args.query_reps)
    out["embed_query_ms"] = latency
    out["query_path_faster"] = min(PRECISIONS, key=lambda p: (latency[p]["p50"], latency[p]["p99"]))
    # The same with one intra-op thread: on a shared 2-core box the 2-thread pool stalls at op boundaries
    # whenever another process holds a core, and that tail grows with the op count, not the precision.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out["embed_query_ms_1_thread"] = query_latency(emb, queries, 1, seed=1)[0]
    torch.set_num_threads(threads)
    out["quality"] = {p: _scores(qvec[p], qids, corpus[p], ids, relevant) for p in PRECISIONS}
    out["ndcg_delta"] = out["quality"]["bf16"]["ndcg@10"] - out["quality"]["fp32"]["ndcg@10"]
    for e in emb.values():
        e.close()

    print(f"reindex in {chosen} ...", flush=True)
    out["reindex"] = reindex_vs_bare(texts, ids, chosen, args.batch_size, work / "reindex")

    if not args.skip_training:
        print("training fp32 / bf16 ...", flush=True)
        pairs = [(data.queries[q], data.corpus[d].content) for q, rels in data.qrels["train"].items()
                 for d, g in rels.items() if g > 0 and d in data.corpus and q in data.queries][: args.train_pairs]
        anchors, positives = [a for a, _ in pairs], [b for _, b in pairs]
        base = encoders["fp32"].model
        speed: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        trained: dict[str, Any] = {}
        for p in ("fp32", "bf16", "bf16", "fp32"):  # A-B-B-A: a drift in machine load cancels out
            trained[p], rate = train_once(base, anchors, positives, bf16=p == "bf16", seq_len=args.train_seq_length,
                                          seed=42)
            speed[p].append(rate)
        train: dict[str, Any] = {"pairs": len(pairs), "pairs_per_s_runs": speed, "scored_in": chosen}
        train["pairs_per_s"] = {p: float(np.mean(v)) for p, v in speed.items()}
        train["speedup"] = train["pairs_per_s"]["bf16"] / train["pairs_per_s"]["fp32"]
        for p, model in trained.items():
            e = VersionEncoder(f"trained-{p}", model, precision=chosen)
            vectors = e.encode(texts, batch_size=args.batch_size)
            q = np.stack([e.encode_query(text) for text in queries])
            train[f"quality_{p}"] = _scores(q, qids, vectors, ids, relevant)
        train["ndcg_delta"] = train["quality_bf16"]["ndcg@10"] - train["quality_fp32"]["ndcg@10"]
        out["training"] = train
    out["loadavg_end"] = os.getloadavg()[0]
    out["seconds"] = time.perf_counter() - started

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print_table(out)
    print(f"\nJSON: {args.out}")


def print_table(out: dict[str, Any]) -> None:
    r, q, lat, ri = out["encode_docs_per_s"], out["quality"], out["embed_query_ms"], out["reindex"]
    rows = [
        ("doc encode docs/s", f"{r['fp32']:.1f}", f"{r['bf16']:.1f}", f"x{out['encode_speedup']:.2f}",
         f">= x1.8 {_verdict(out['encode_speedup'] >= 1.8)}"),
        ("doc cosine bf16 vs fp32", "", "", f"mean {out['doc_cosine_bf16_vs_fp32']['mean']:.5f}",
         f"min {out['doc_cosine_bf16_vs_fp32']['min']:.5f}"),
    ]
    for s in ("p50", "p90", "p99"):
        rows.append((f"embed_query {s} ms", f"{lat['fp32'][s]:.2f}", f"{lat['bf16'][s]:.2f}",
                     f"x{lat['fp32'][s] / lat['bf16'][s]:.2f}", "faster: " + out["query_path_faster"] if s == "p50" else ""))
    one = out["embed_query_ms_1_thread"]
    for s in ("p50", "p99"):
        rows.append((f"embed_query {s} ms, 1 thread", f"{one['fp32'][s]:.2f}", f"{one['bf16'][s]:.2f}",
                     f"x{one['fp32'][s] / one['bf16'][s]:.2f}", ""))
    for m in ("ndcg@10", "recall@10"):
        d = q["bf16"][m] - q["fp32"][m]
        rows.append((f"SciFact test {m}", f"{q['fp32'][m]:.4f}", f"{q['bf16'][m]:.4f}", f"{d:+.4f}",
                     f"|d| <= 0.005 {_verdict(abs(d) <= 0.005)}" if m == "ndcg@10" else ""))
    rows.append((f"reindex vs bare ({ri['precision']})", f"bare {ri['bare_encode_docs_per_s']:.1f}",
                 f"reindex {ri['reindex_docs_per_s']:.1f}", f"x{ri['reindex_vs_bare']:.2f}",
                 f">= x0.90 {_verdict(ri['reindex_vs_bare'] >= 0.90)}"))
    rows.append(("add_texts docs/s", "", f"{ri['add_texts_docs_per_s']:.1f}", "", f"recorded: {ri['recorded_index_precision']}"))
    if "training" in out:
        t = out["training"]
        rows.append((f"train pairs/s ({t['pairs']} pairs)", f"{t['pairs_per_s']['fp32']:.2f}",
                     f"{t['pairs_per_s']['bf16']:.2f}", f"x{t['speedup']:.2f}", f">= x1.5 {_verdict(t['speedup'] >= 1.5)}"))
        rows.append((f"trained nDCG@10 (in {t['scored_in']})", f"{t['quality_fp32']['ndcg@10']:.4f}",
                     f"{t['quality_bf16']['ndcg@10']:.4f}", f"{t['ndcg_delta']:+.4f}",
                     f"|d| <= 0.005 {_verdict(abs(t['ndcg_delta']) <= 0.005)}"))
    widths = [max(len(str(row[i])) for row in rows + [("metric", "fp32", "bf16", "bf16 vs fp32", "target")])
              for i in range(5)]
    header = ("metric", "fp32", "bf16", "bf16 vs fp32", "target")
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\n{out['docs']} docs, max_seq_length {out['max_seq_length']}, {out['threads']} threads, {out['cpu']}; "
          f"load average {out['loadavg_start']:.1f} -> {out['loadavg_end']:.1f}; {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
