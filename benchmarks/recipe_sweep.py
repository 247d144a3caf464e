"""Recipe sweep: which training defaults (epochs, traffic, hard negatives, seq length) should the click loop use?

A standalone re-implementation of the repository's loop in plain sentence-transformers, for a GPU box
that has torch / transformers / sentence-transformers / datasets but not clicktune's service stack
(no Qdrant, no LangChain, no SQLAlchemy). Per configuration (seq_len L, epochs E, traffic rounds R,
hard negatives on/off, seed s; always starting from the base model):

1. base model at max_seq_length L, exact cosine top-10 over the corpus (cached per L);
2. simulated users: R rounds of every train query once against the base model's ranking,
   position-based clicks (examine rank r with 1/r**eta; click relevant p=0.9, non-relevant p=0.05)
   (cached per (L, seed); R rounds are the first R rounds of one stream);
3. mining as scheduler/miner.py was when the sweeps ran (2026-11-26/27): (query, clicked doc) pairs,
   skip-above hard negatives, clipped inverse-propensity weights summed per pair, then ** 0.5,
   normalised to mean 1, 20% of queries held out by hash. The miner has since moved on (propensities
   from interventions, a "no-click next" negative, each click tempered, the newest clicks under the
   per-user cap); this model was not updated, so its figures are the old miner's;
4. training as scheduler/training.py ClickTrainer.train: weighted resample, triplets/pairs datasets,
   MultipleNegativesRankingLoss, NO_DUPLICATES batches, lr 2e-5, warmup ratio 0.1;
5. SciFact test nDCG@10 / Recall@10 / MRR@10 of base and candidate (exact cosine, full corpus);
6. team-draft interleaving (Radlinski et al., 2008) of base (champion) vs candidate on the train
   queries with PBM clicks; wins / losses / ties and z = (W - L) / sqrt(W + L) at 1x, 2x, 4x searches.

Usage (GPU):
    python benchmarks/recipe_sweep.py --model PATH_TO_SENTENCE_TRANSFORMER [--time-budget-s 480]
Smoke test (CPU):
    CUDA_VISIBLE_DEVICES= python benchmarks/recipe_sweep.py --model M --corpus-limit 400 --query-limit 60 \
        --seq-lens 64 --epochs 1 --rounds 1 --seeds 0

Results: one line per config on stdout, and JSON at --out (rewritten after every config).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # model-loading and widget-example bars would flood the log

import numpy as np  # noqa: E402

K = 10


# ----------------------------------------------------------------------------------------------- data


def _jsonl(root: Path, stem: str):
    for name, opener in ((f"{stem}.jsonl", open), (f"{stem}.jsonl.gz", gzip.open)):
        path = root / name
        if path.exists():
            with opener(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
            return
    raise FileNotFoundError(f"{root} has neither {stem}.jsonl nor {stem}.jsonl.gz")


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            table.setdefault(row["query-id"].strip(), {})[row["corpus-id"].strip()] = int(row["score"])
    return table


@dataclass
class Data:
    doc_ids: list[str]
    doc_texts: list[str]
    train_qids: list[str]
    test_qids: list[str]
    queries: dict[str, str]
    relevant: dict[str, set[str]]  # qid -> relevant doc ids (score > 0), train and test

    def doc_index(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.doc_ids)}


def load_data(folder: Path, corpus_limit: int | None, query_limit: int | None, seed: int = 12345) -> Data:
    corpus: dict[str, str] = {}
    for row in _jsonl(folder, "corpus"):
        title, text = row.get("title") or "", row.get("text") or ""
        corpus[str(row["_id"])] = f"{title}. {text}" if title else text
    queries = {str(row["_id"]): row["text"] for row in _jsonl(folder, "queries")}
    train = _qrels(folder / "qrels" / "train.tsv")
    test = _qrels(folder / "qrels" / "test.tsv")
    relevant: dict[str, set[str]] = {}
    for table in (train, test):
        for qid, docs in table.items():
            rel = {d for d, s in docs.items() if s > 0 and d in corpus}
            if rel:
                relevant[qid] = relevant.get(qid, set()) | rel
    train_qids = sorted((q for q in train if q in queries and relevant.get(q)), key=_natural)
    test_qids = sorted((q for q in test if q in queries and relevant.get(q)), key=_natural)
    rng = np.random.default_rng(seed)
    if query_limit:
        train_qids = sorted(rng.choice(train_qids, min(query_limit, len(train_qids)), replace=False).tolist(),
                            key=_natural)
        test_qids = sorted(rng.choice(test_qids, min(query_limit, len(test_qids)), replace=False).tolist(),
                           key=_natural)
    doc_ids = sorted(corpus, key=_natural)
    if corpus_limit and corpus_limit < len(doc_ids):
        keep = {d for q in train_qids + test_qids for d in relevant[q]}
        others = [d for d in doc_ids if d not in keep]
        extra = max(0, corpus_limit - len(keep))
        keep |= set(rng.choice(others, min(extra, len(others)), replace=False).tolist()) if extra else set()
        doc_ids = [d for d in doc_ids if d in keep]
    kept = set(doc_ids)
    relevant = {q: {d for d in r if d in kept} for q, r in relevant.items()}
    return Data(doc_ids, [corpus[d] for d in doc_ids], train_qids, test_qids, queries, relevant)


def _natural(x: str):
    return (0, int(x), "") if x.isdigit() else (1, 0, x)


# --------------------------------------------------------------------------- miner (scheduler/miner.py)


def normalize_query(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def query_key(text: str) -> str:
    return hashlib.blake2b(normalize_query(text).encode("utf-8"), digest_size=8).hexdigest()


def is_heldout(text: str, fraction: float) -> bool:
    """Deterministic by query text: the first 8 bytes of blake2b as a uniform number in [0, 1)."""
    return int(query_key(text), 16) / 2**64 < fraction


def fit_propensities(impressions_by_rank: Counter, clicks_by_rank: Counter, eta: float, mode: str,
                     min_impressions: int = 200, floor: float = 0.02) -> dict[int, float]:
    """``prior``: 1/rank**eta. ``estimated``: the loop's estimator before 2026-12-05 (CTR ratio to rank 1
    where a rank has >= 200 impressions, monotone envelope, floor 0.02), kept to reproduce old sweeps.
    The loop now harvests interventions (scheduler/propensity.py); on one ranker's first pass, as here,
    there are none and it uses the prior."""
    ranks = sorted(impressions_by_rank)
    if mode == "prior":
        return {r: 1.0 / r**eta for r in ranks}
    ctr1_n = impressions_by_rank.get(1, 0)
    ctr1 = clicks_by_rank.get(1, 0) / ctr1_n if ctr1_n else 0.0
    out: dict[int, float] = {}
    previous = 1.0
    for rank in ranks:
        n = impressions_by_rank[rank]
        if ctr1 > 0 and n >= min_impressions and ctr1_n >= min_impressions:
            value = (clicks_by_rank.get(rank, 0) / n) / ctr1
        else:
            value = 1.0 / rank**eta
        value = max(floor, min(previous, value)) if rank > 1 else 1.0
        out[rank] = value
        previous = value
    return out


@dataclass
class _Pair:
    query: str
    doc_id: str
    clicks: int = 0
    weight: float = 0.0
    negatives: Counter = field(default_factory=Counter)


@dataclass
class Search:
    qid: str
    shown: list[str]  # doc ids, rank 1 first
    clicked: list[str]  # doc ids, in rank order (the simulator clicks top to bottom)


def mine(searches: list[Search], queries: dict[str, str], doc_text: dict[str, str], *, hard_negative: bool,
         eta: float, propensity: str, heldout_fraction: float = 0.2, max_weight: float = 10.0,
         weight_power: float = 0.5, min_clicks: int = 1) -> tuple[dict[str, list], dict[str, Any]]:
    impressions_by_rank: Counter = Counter()
    clicks_by_rank: Counter = Counter()
    for s in searches:
        clicked = set(s.clicked)
        for rank, doc in enumerate(s.shown, start=1):
            impressions_by_rank[rank] += 1
            clicks_by_rank[rank] += doc in clicked
    props = fit_propensities(impressions_by_rank, clicks_by_rank, eta, propensity)

    pairs: dict[tuple[str, str], _Pair] = {}
    for s in searches:
        text = queries[s.qid]
        ranks = {d: r for r, d in enumerate(s.shown, start=1)}
        clicked = set(s.clicked)
        key = normalize_query(text)
        for doc in s.clicked:
            rank = ranks[doc]
            pair = pairs.setdefault((key, doc), _Pair(text, doc))
            pair.clicks += 1
            pair.weight += min(max_weight, 1.0 / props[rank])
            for other, shown_rank in ranks.items():
                if shown_rank < rank and other not in clicked:
                    pair.negatives[other] += 1

    supported = [p for p in pairs.values() if p.clicks >= min_clicks]
    positives_by_query: dict[str, set[str]] = defaultdict(set)
    for p in supported:
        positives_by_query[normalize_query(p.query)].add(p.doc_id)

    rows: dict[str, list] = {"anchor": [], "positive": [], "negative": [], "weight": []}
    negatives_used = heldout_pairs = 0
    heldout_queries: set[str] = set()
    for p in sorted(supported, key=lambda p: (normalize_query(p.query), p.doc_id)):
        key = normalize_query(p.query)
        if is_heldout(p.query, heldout_fraction):
            heldout_pairs += 1
            heldout_queries.add(key)
            continue
        negative = None
        if hard_negative:
            negative = next(
                (d for d, _ in sorted(p.negatives.items(), key=lambda kv: (-kv[1], kv[0]))
                 if d not in positives_by_query[key] and d in doc_text),
                None,
            )
        negatives_used += negative is not None
        rows["anchor"].append(p.query)
        rows["positive"].append(doc_text[p.doc_id])
        rows["negative"].append(doc_text[negative] if negative else None)
        rows["weight"].append(p.weight**weight_power)
    if rows["weight"]:
        mean = sum(rows["weight"]) / len(rows["weight"])
        rows["weight"] = [w / mean for w in rows["weight"]]
    stats = {
        "searches": len(searches),
        "clicks": sum(len(s.clicked) for s in searches),
        "pairs": len(supported),
        "train_pairs": len(rows["anchor"]),
        "train_queries": len({normalize_query(a) for a in rows["anchor"]}),
        "train_with_negative": negatives_used,
        "heldout_pairs": heldout_pairs,
        "heldout_queries": len(heldout_queries),
        "ctr_by_rank": {r: round(clicks_by_rank[r] / n, 4) for r, n in sorted(impressions_by_rank.items()) if n},
    }
    return rows, stats


# ------------------------------------------------------------------------ training (scheduler/training.py)


def weighted_resample(weights: np.ndarray, seed: int) -> np.ndarray:
    """Row indices drawn with probability proportional to weight, as many as there are rows."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("weights must be finite and non-negative")
    if weights.sum() == 0:
        weights = np.ones_like(weights)
    rng = np.random.default_rng(seed)
    return rng.choice(len(weights), size=len(weights), replace=True, p=weights / weights.sum())


def systematic_resample(weights: np.ndarray, seed: int) -> np.ndarray:
    """As weighted_resample (each row's expected count is n * w_i / sum w), but each count is within one
    of that expectation: one uniform offset, n evenly spaced pointers into the cumulative weights."""
    weights = np.asarray(weights, dtype=np.float64)
    n = len(weights)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if weights.sum() == 0:
        weights = np.ones_like(weights)
    cumulative = np.cumsum(weights / weights.sum()) * n
    pointers = np.random.default_rng(seed).uniform() + np.arange(n)
    return np.minimum(np.searchsorted(cumulative, pointers, side="right"), n - 1)


def prepare_datasets(train, seed: int, resample: str = "multinomial") -> dict:
    """Split the miner's rows into (anchor, positive) and (anchor, positive, negative) datasets."""
    if "weight" in train.column_names and resample != "none":
        pick = systematic_resample if resample == "systematic" else weighted_resample
        train = train.select(pick(np.asarray(train["weight"]), seed).tolist())
    negatives = train["negative"] if "negative" in train.column_names else [None] * len(train)
    with_neg = [i for i, n in enumerate(negatives) if n]
    without = [i for i, n in enumerate(negatives) if not n]
    out: dict = {}
    if with_neg:
        out["triplets"] = train.select(with_neg).select_columns(["anchor", "positive", "negative"])
    if without:
        out["pairs"] = train.select(without).select_columns(["anchor", "positive"])
    return out


def _batch_samplers():
    try:
        from sentence_transformers.base.sampler import BatchSamplers
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.training_args import BatchSamplers
    return BatchSamplers


def _mnrl(model):
    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss
    return MultipleNegativesRankingLoss(model)


def load_model(path: str, device: str, seq_len: int):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device=device)
    model.float()  # the copy may be stored in fp16: fp32 master weights for training and exact scoring
    model.max_seq_length = seq_len
    return model


def train_candidate(rows: dict[str, list], *, model_path: str, device: str, seq_len: int, epochs: float,
                    batch_size: int, lr: float, warmup_ratio: float, seed: int, bf16: bool,
                    resample: str = "multinomial"):
    """ClickTrainer.train without the registry: same data preparation, loss and trainer arguments."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    set_seed(seed)
    model = load_model(model_path, device, seq_len)
    datasets = prepare_datasets(Dataset.from_dict(rows), seed, resample)
    n_rows = sum(len(d) for d in datasets.values())
    loss = _mnrl(model)
    with tempfile.TemporaryDirectory(prefix="recipe-sweep-") as output_dir:
        args = SentenceTransformerTrainingArguments(
            output_dir=output_dir,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=lr,
            warmup_steps=warmup_ratio,  # a float is a ratio in Transformers v5
            batch_sampler=_batch_samplers().NO_DUPLICATES,
            seed=seed,
            data_seed=seed,
            save_strategy="no",
            report_to="none",
            logging_steps=max(1, n_rows // (batch_size * 5)),
            disable_tqdm=True,
            dataloader_drop_last=False,
            dataloader_pin_memory=torch.cuda.is_available(),
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=datasets if len(datasets) > 1 else next(iter(datasets.values())),
            loss=loss,
        )
        for callback in (PrinterCallback, ProgressCallback):  # one line per config on stdout, not per log
            trainer.remove_callback(callback)
        output = trainer.train()
    info = {"rows_trained": n_rows, "datasets": {k: len(v) for k, v in datasets.items()},
            "train_loss": getattr(output, "training_loss", None), "steps": getattr(output, "global_step", None)}
    return model, info


# --------------------------------------------------------------------------------- ranking and metrics


def encode(model, texts: list[str], batch_size: int):
    import torch

    with torch.inference_mode():
        emb = model.encode(texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True,
                           show_progress_bar=False)
    return emb.float()


def top_k(query_emb, doc_emb, k: int = K) -> np.ndarray:
    """Exact cosine (embeddings are normalised): indices of the top-k documents per query."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, query_emb.shape[0], 1024):
            scores = query_emb[start:start + 1024] @ doc_emb.T
            out.append(torch.topk(scores, min(k, doc_emb.shape[0]), dim=1).indices.cpu())
    return torch.cat(out).numpy()


@dataclass
class Rankings:
    train: dict[str, list[str]]  # qid -> top-10 doc ids
    test: dict[str, list[str]]
    seconds: float


def rank(model, data: Data, batch_size: int) -> Rankings:
    started = time.perf_counter()
    doc_emb = encode(model, data.doc_texts, batch_size)
    out = {}
    for name, qids in (("train", data.train_qids), ("test", data.test_qids)):
        q_emb = encode(model, [data.queries[q] for q in qids], batch_size)
        idx = top_k(q_emb, doc_emb)
        out[name] = {q: [data.doc_ids[i] for i in row] for q, row in zip(qids, idx.tolist(), strict=True)}
    return Rankings(out["train"], out["test"], time.perf_counter() - started)


def ir_metrics(rankings: dict[str, list[str]], relevant: dict[str, set[str]], qids: list[str], k: int = K) -> dict:
    """InformationRetrievalEvaluator's definitions: binary nDCG@k (ideal over all relevant), MRR@k, Recall@k."""
    ndcgs, mrrs, recalls = [], [], []
    for qid in qids:
        rels = relevant.get(qid) or set()
        if not rels:
            continue
        top = rankings.get(qid, [])[:k]
        dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(top) if d in rels)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rels), k)))
        first = next((i for i, d in enumerate(top) if d in rels), None)
        ndcgs.append(dcg / ideal)
        mrrs.append(0.0 if first is None else 1.0 / (first + 1))
        recalls.append(sum(1 for d in top if d in rels) / len(rels))
    n = len(ndcgs)
    return {"ndcg@10": sum(ndcgs) / n if n else 0.0, "recall@10": sum(recalls) / n if n else 0.0,
            "mrr@10": sum(mrrs) / n if n else 0.0, "queries": n}


# -------------------------------------------------------------------------------- simulated users


@dataclass
class ClickModel:
    eta: float = 1.0
    p_relevant: float = 0.9
    p_noise: float = 0.05

    def clicks(self, shown: list[str], relevant: set[str], rng: np.random.Generator) -> list[int]:
        """Positions (0-based) clicked under the PBM, as the repo's simulator draws them."""
        out = []
        for i, doc in enumerate(shown):
            if rng.random() >= 1.0 / (i + 1) ** self.eta:
                continue
            if rng.random() < (self.p_relevant if doc in relevant else self.p_noise):
                out.append(i)
        return out


def traffic_round(base: Rankings, data: Data, clicks: ClickModel, seed: int, round_index: int) -> list[Search]:
    """One round: every train query once, shuffled, against the base (champion) ranking."""
    rng = np.random.default_rng([seed, round_index])
    out = []
    for j in rng.permutation(len(data.train_qids)).tolist():
        qid = data.train_qids[j]
        shown = base.train[qid]
        out.append(Search(qid, shown, [shown[i] for i in clicks.clicks(shown, data.relevant[qid], rng)]))
    return out


def team_draft(a: list[str], b: list[str], k: int, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """Team-draft interleaving: returns the list and, per position, 0 (team a) or 1 (team b)."""
    out: list[str] = []
    teams: list[int] = []
    seen: set[str] = set()
    ia = ib = na = nb = 0
    while len(out) < k:
        a_turn = na < nb or (na == nb and rng.random() < 0.5)
        for turn in ((0, 1) if a_turn else (1, 0)):
            src, pos = (a, ia) if turn == 0 else (b, ib)
            while pos < len(src) and src[pos] in seen:
                pos += 1
            if turn == 0:
                ia = pos
            else:
                ib = pos
            if pos < len(src):
                doc = src[pos]
                out.append(doc)
                teams.append(turn)
                seen.add(doc)
                if turn == 0:
                    na += 1
                else:
                    nb += 1
                break
        else:  # both exhausted
            break
    return out, teams


def interleave(champion: Rankings, candidate: Rankings, data: Data, clicks: ClickModel, *, searches: int,
               seed: int, multiples: tuple[int, ...] = (1, 2, 4), heldout_fraction: float = 0.2) -> dict:
    """Team-draft interleaving champion (base) vs candidate over the train queries, PBM clicks.

    The query stream is concatenated shuffles of the train queries; the 2x and 4x results extend the 1x
    stream with fresh randomness (same rankings, new coin flips and clicks).
    """
    rng = np.random.default_rng([seed, 99991])
    n = len(data.train_qids)
    total = searches * max(multiples)
    stream: list[int] = []
    while len(stream) < total:
        stream.extend(rng.permutation(n).tolist())
    heldout = {q for q in data.train_qids if is_heldout(data.queries[q], heldout_fraction)}
    tallies = {"all": [0, 0, 0], "trained_queries": [0, 0, 0], "heldout_queries": [0, 0, 0]}
    checkpoints = {searches * m: m for m in multiples}
    out: dict[str, Any] = {}
    identical = 0
    for i, j in enumerate(stream[:total], start=1):
        qid = data.train_qids[j]
        a, b = champion.train[qid], candidate.train[qid]
        identical += a == b
        shown, teams = team_draft(a, b, K, rng)
        credit = [0, 0]
        for pos in clicks.clicks(shown, data.relevant[qid], rng):
            credit[teams[pos]] += 1
        outcome = 0 if credit[1] > credit[0] else 1 if credit[1] < credit[0] else 2  # win, loss, tie (candidate)
        tallies["all"][outcome] += 1
        tallies["heldout_queries" if qid in heldout else "trained_queries"][outcome] += 1
        if i in checkpoints:
            out[f"{checkpoints[i]}x"] = {
                "searches": i,
                **{name: _z(*t) for name, t in tallies.items()},
                "identical_top10": identical,
            }
    return out


def _z(wins: int, losses: int, ties: int) -> dict:
    z = (wins - losses) / math.sqrt(wins + losses) if wins + losses else 0.0
    return {"wins": wins, "losses": losses, "ties": ties, "z": round(z, 3)}


# ------------------------------------------------------------------------------------------------ sweep


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _default_out() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "recipe_sweep.json" if out else Path("benchmarks/results/recipe_sweep.json")


def _write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "sentence_transformers", "datasets", "accelerate", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - report, don't fail
            out[name] = f"unavailable ({type(exc).__name__})"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local SentenceTransformer folder (fp16 or fp32)")
    p.add_argument("--data", type=Path, default=Path("scheduler/data/scifact"))
    p.add_argument("--out", type=Path, default=None, help="default $OUT/recipe_sweep.json or benchmarks/results/")
    p.add_argument("--seq-lens", default="128,256")
    p.add_argument("--epochs", default="3,1")
    p.add_argument("--rounds", default="1,3")
    p.add_argument("--hard-negatives", default="1,0")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--max-configs", type=int, default=None)
    p.add_argument("--time-budget-s", type=float, default=None, help="start no new config after this many seconds")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--min-pairs", type=int, default=32, help="the loop's train_min_pairs: fewer -> config skipped")
    p.add_argument("--eta", type=float, default=1.0)
    p.add_argument("--p-relevant", type=float, default=0.9)
    p.add_argument("--p-noise", type=float, default=0.05)
    p.add_argument("--propensity", choices=("prior", "estimated"), default="prior",
                   help="prior: 1/rank**eta (default); estimated: the repo's PropensityModel.fit from CTRs")
    p.add_argument("--heldout-fraction", type=float, default=0.2)
    p.add_argument("--heldout-fractions", default=None, help="comma list; overrides --heldout-fraction per config")
    p.add_argument("--resamples", default="multinomial", help="comma list of multinomial,systematic,none")
    p.add_argument("--batch-sizes", default=None, help="comma list; overrides --batch-size per config")
    p.add_argument("--interleave-searches", type=int, default=None, help="default: one per train query (809)")
    p.add_argument("--encode-batch-size", type=int, default=128)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast training (default: on when CUDA is available)")
    p.add_argument("--corpus-limit", type=int, default=None, help="smoke tests: subsample the corpus")
    p.add_argument("--query-limit", type=int, default=None, help="smoke tests: subsample train and test queries")
    args = p.parse_args()
    started = time.perf_counter()

    import logging

    import torch

    # Keep stdout to one line per config (the device returns only the output's tail): e.g. "model created
    # with Sentence Transformers 6.2.0, you're using 6.0.1" would otherwise print at every model load.
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        import datasets as hf_datasets

        hf_datasets.disable_progress_bars()
    except Exception:  # noqa: BLE001 - the training import will say what is missing
        pass

    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = (device == "cuda") if args.bf16 is None else args.bf16
    out_path = args.out or _default_out()
    clicks = ClickModel(args.eta, args.p_relevant, args.p_noise)

    data = load_data(args.data, args.corpus_limit, args.query_limit)
    doc_text = dict(zip(data.doc_ids, data.doc_texts, strict=True))
    searches = args.interleave_searches or len(data.train_qids)

    seq_lens, epochs, rounds = _ints(args.seq_lens), _floats(args.epochs), _ints(args.rounds)
    hard_negs, seeds = [bool(x) for x in _ints(args.hard_negatives)], _ints(args.seeds)
    # Most important first: hard negatives on, the first seq length, seed 0 over every (epochs, rounds).
    heldouts = _floats(args.heldout_fractions) if args.heldout_fractions else [args.heldout_fraction]
    batches = _ints(args.batch_sizes) if args.batch_sizes else [args.batch_size]
    resamples = args.resamples.split(",")
    grid = [
        {"seq_len": L, "epochs": E, "rounds": R, "hard_negative": hn, "seed": s, "start_from": "base",
         "resample": rs, "heldout_fraction": hf, "batch_size": bs}
        for hn in hard_negs for L in seq_lens for rs in resamples for hf in heldouts for bs in batches
        for s in seeds for E in epochs for R in rounds
    ]
    if args.max_configs is not None:
        grid = grid[: args.max_configs]

    meta = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "bf16": bf16,
        "versions": _versions(),
        "corpus_docs": len(data.doc_ids),
        "train_queries": len(data.train_qids),
        "test_queries": len(data.test_qids),
        "interleave_searches": searches,
        "click_model": vars(clicks),
        "grid_size": len(grid),
    }
    print(f"recipe sweep: {len(grid)} configs on {meta['device']} (bf16={bf16}); corpus {len(data.doc_ids)}, "
          f"train queries {len(data.train_qids)}, test queries {len(data.test_qids)}; versions {meta['versions']}",
          flush=True)
    results: dict[str, Any] = {"meta": meta, "base": {}, "configs": [], "complete": False}
    _write(out_path, results)

    base_model = None
    base_rankings: dict[int, Rankings] = {}
    traffic: dict[tuple[int, int], list[list[Search]]] = {}

    for n, cfg in enumerate(grid, start=1):
        elapsed_total = time.perf_counter() - started
        if args.time_budget_s is not None and elapsed_total > args.time_budget_s:
            print(f"time budget {args.time_budget_s:.0f}s spent after {n - 1} configs: stopping", flush=True)
            results["stopped"] = f"time budget after {n - 1} of {len(grid)} configs"
            break
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        L, E, R, hn, s = cfg["seq_len"], cfg["epochs"], cfg["rounds"], cfg["hard_negative"], cfg["seed"]
        record: dict[str, Any] = dict(cfg)
        try:
            if L not in base_rankings:
                t = time.perf_counter()
                if base_model is None:
                    base_model = load_model(args.model, device, L)
                base_model.max_seq_length = L
                base_rankings[L] = rank(base_model, data, args.encode_batch_size)
                results["base"][str(L)] = {
                    "test": ir_metrics(base_rankings[L].test, data.relevant, data.test_qids),
                    "train": ir_metrics(base_rankings[L].train, data.relevant, data.train_qids),
                    "encode_seconds": round(base_rankings[L].seconds, 2),
                }
                timings["base_encode"] = time.perf_counter() - t
            base = base_rankings[L]
            t = time.perf_counter()
            stream = traffic.setdefault((L, s), [])
            while len(stream) < R:
                stream.append(traffic_round(base, data, clicks, s, len(stream)))
            events = [x for rnd in stream[:R] for x in rnd]
            rows, stats = mine(events, data.queries, doc_text, hard_negative=hn, eta=args.eta,
                               propensity=args.propensity, heldout_fraction=cfg["heldout_fraction"])
            record["mining"] = stats
            timings["traffic_and_mining"] = time.perf_counter() - t
            if len(rows["anchor"]) < args.min_pairs:
                raise RuntimeError(f"{len(rows['anchor'])} training pairs < --min-pairs {args.min_pairs}")

            t = time.perf_counter()
            model, info = train_candidate(
                rows, model_path=args.model, device=device, seq_len=L, epochs=E, batch_size=cfg["batch_size"],
                lr=args.lr, warmup_ratio=args.warmup_ratio, seed=s, bf16=bf16, resample=cfg["resample"],
            )
            record["training"] = info
            timings["train"] = time.perf_counter() - t

            t = time.perf_counter()
            model.eval()
            cand = rank(model, data, args.encode_batch_size)
            del model
            base_test = results["base"][str(L)]["test"]
            cand_test = ir_metrics(cand.test, data.relevant, data.test_qids)
            record["test"] = {
                "base": base_test,
                "candidate": cand_test,
                "ratio": {m: (cand_test[m] / base_test[m] if base_test[m] else None)
                          for m in ("ndcg@10", "recall@10", "mrr@10")},
            }
            timings["evaluate"] = time.perf_counter() - t
            t = time.perf_counter()
            record["interleaving"] = interleave(base, cand, data, clicks, searches=searches, seed=s,
                                                heldout_fraction=cfg["heldout_fraction"])
            timings["interleave"] = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - one failed config must not lose the others
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["traceback"] = traceback.format_exc()
            print(record["traceback"], file=sys.stderr, flush=True)
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
        record["seconds"] = round(time.perf_counter() - t0, 2)
        record["timings"] = {k: round(v, 2) for k, v in timings.items()}
        results["configs"].append(record)
        _write(out_path, results)
        print(_line(n, len(grid), record, time.perf_counter() - started), flush=True)
    else:
        results["complete"] = True
    results["seconds"] = round(time.perf_counter() - started, 2)
    _write(out_path, results)
    print(f"wrote {out_path} ({len(results['configs'])} configs, {results['seconds']:.0f}s)", flush=True)


def _line(n: int, total: int, r: dict, wall: float) -> str:
    head = (f"[{n}/{total}] L={r['seq_len']} E={r['epochs']:g} R={r['rounds']} hn={int(r['hard_negative'])} "
            f"s={r['seed']} rs={r.get('resample')} hf={r.get('heldout_fraction')} bs={r.get('batch_size')}")
    if "error" in r:
        return f"{head} | ERROR {r['error']} | {r['seconds']:.1f}s (wall {wall:.0f}s)"
    m, tr, te = r["mining"], r["training"], r["test"]
    b, c, ratio = te["base"], te["candidate"], te["ratio"]
    il = r["interleaving"]
    zs = " ".join(f"z{k}={v['all']['z']:+.2f}" for k, v in il.items())
    first = next(iter(il.values()))["all"]
    loss = "n/a" if tr["train_loss"] is None else f"{tr['train_loss']:.3f}"
    return (f"{head} | clicks {m['clicks']} pairs {m['train_pairs']} (neg {m['train_with_negative']}) rows "
            f"{tr['rows_trained']} loss {loss} | nDCG {b['ndcg@10']:.4f}->{c['ndcg@10']:.4f} "
            f"x{ratio['ndcg@10']:.4f} R@10 x{ratio['recall@10']:.4f} MRR x{ratio['mrr@10']:.4f} | "
            f"TDI W/L/T {first['wins']}/{first['losses']}/{first['ties']} {zs} | {r['seconds']:.1f}s "
            f"(wall {wall:.0f}s)")


if __name__ == "__main__":
    sys.exit(main())
