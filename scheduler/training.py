"""Fine-tuning a candidate from mined click pairs with sentence-transformers' own trainer.

Composable pieces, as sentence-transformers has them: a :class:`TrainingConfig`, a loss chosen by
name (:func:`build_loss`), the data preparation (:func:`prepare_datasets`) and :class:`ClickTrainer`
that runs ``SentenceTransformerTrainer`` and registers the result as a ``candidate`` version.

How the miner's weights are honoured: by **weighted sampling**. MultipleNegativesRankingLoss has no
per-example weight, so rows are resampled (systematically, seeded) in proportion to their
inverse-propensity weight, keeping the epoch size up to ``max_rows``; the NO_DUPLICATES batch sampler
then keeps a repeated row from meeting itself as an in-batch negative.

Why an epoch has a ceiling (``max_rows``): each tick trains the base model on the whole window, and
repeated traffic keeps adding pairs (many of them documents clicked once, by noise), so an epoch as
long as the pair count grew a tick's training 670 -> 964 -> 1,655 rows (737 -> 1,772 s) over three
rounds of the SciFact benchmark. The resample is unbiased at any size (row i's expected count stays
proportional to its weight), so drawing ``max_rows`` rows bounds the CPU time of a tick without
re-weighting anything: every pair's share shrinks alike, the well-evidenced pairs lose the extra
copies that a longer epoch gave them (hidden extra epochs), and a pair whose expected count falls
under one is kept with that probability.

Rows with a skip-above hard negative and rows without one are two datasets (triplets and pairs)
trained together with ST's multi-dataset sampler, so no row needs an invented negative.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from clicktune.adapters.crashpoints import fail_point
from clicktune.adapters.errors import ClicktuneError
from clicktune.adapters.models import load_sentence_transformer, resolve_precision
from clicktune.adapters.registry import ModelRegistry
from clicktune.adapters.settings import ClicktuneSettings

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


class NotEnoughPairsError(ClicktuneError):
    """The feedback window yielded too few training pairs to train on."""


@dataclass
class TrainingConfig:
    start_from: Literal["base", "champion"] = "base"
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    max_seq_length: int | None = 128
    loss: Literal["mnrl", "cached_mnrl", "matryoshka"] = "mnrl"
    min_pairs: int = 32
    #: At most this many rows an epoch (a weighted resample of the pairs); None: one row per pair.
    max_rows: int | None = 1024
    seed: int = 42
    show_progress: bool = False
    matryoshka_dims: tuple[int, ...] = (384, 256, 128, 64)
    #: bf16 mixed precision (the Trainer's autocast, fp32 master weights). ``from_settings`` turns it on
    #: where ``training.precision`` resolves to bf16: natively supported hardware, under ``auto``.
    bf16: bool = False

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings) -> TrainingConfig:
        """The ``training`` group as is (same field names), and what it takes from the rest of the settings."""
        training = settings.training
        return cls(
            **training.model_dump(exclude={"precision"}),
            seed=settings.seed,
            show_progress=settings.show_progress(),
            bf16=resolve_precision(training.precision, device=settings.device) == "bf16",
        )


@dataclass
class TrainingResult:
    version: str
    parent: str | None
    pairs: int
    rows_trained: int
    seconds: float
    train_loss: float | None
    config: dict[str, Any] = field(default_factory=dict)


def build_loss(model: SentenceTransformer, config: TrainingConfig):
    """MNRL (in-batch + hard negatives); its cached variant when a batch won't fit; Matryoshka on top."""
    from sentence_transformers.sentence_transformer import losses

    if config.loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=min(16, config.batch_size))
    base = losses.MultipleNegativesRankingLoss(model)
    if config.loss == "matryoshka":
        dim = model.get_embedding_dimension()
        dims = [d for d in config.matryoshka_dims if d <= dim] or [dim]
        return losses.MatryoshkaLoss(model, base, matryoshka_dims=dims)
    return base


def weighted_resample(weights: np.ndarray, seed: int, size: int | None = None) -> np.ndarray:
    """``size`` row indices (default: as many as there are rows) in proportion to weight, by
    *systematic* resampling.

    Row i's expected count is size * w_i / sum(w), as with independent draws, so the inverse-propensity
    weighting stays unbiased; but each count is within one of its expectation (one uniform offset, size
    evenly spaced pointers into the cumulative weights). Independent draws with replacement leave about
    a third of the rows out of every epoch by chance alone; on SciFact that cost x1.023 -> x1.041
    mean test nDCG@10 over three seeds (docs/RESULTS.md, training recipe).
    """
    weights = np.asarray(weights, dtype=np.float64)
    n = len(weights)
    size = n if size is None else size
    if size < 0:
        raise ValueError("size must be non-negative")
    if n == 0 or size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("weights must be finite and non-negative")
    if weights.sum() == 0:
        weights = np.ones_like(weights)
    cumulative = np.cumsum(weights / weights.sum()) * size
    pointers = np.random.default_rng(seed).uniform() + np.arange(size)
    return np.minimum(np.searchsorted(cumulative, pointers, side="right"), n - 1)


def prepare_datasets(train: Dataset, seed: int, max_rows: int | None = None) -> dict[str, Dataset]:
    """Split the miner's rows into (anchor, positive) and (anchor, positive, negative) datasets,
    resampled by weight to one row per pair or ``max_rows``, whichever is fewer."""
    size = len(train) if max_rows is None else min(len(train), max_rows)
    if "weight" in train.column_names or size < len(train):
        weights = np.asarray(train["weight"]) if "weight" in train.column_names else np.ones(len(train))
        train = train.select(weighted_resample(weights, seed, size).tolist())
    negatives = train["negative"] if "negative" in train.column_names else [None] * len(train)
    with_neg = [i for i, n in enumerate(negatives) if n]
    without = [i for i, n in enumerate(negatives) if not n]
    out: dict[str, Dataset] = {}
    if with_neg:
        out["triplets"] = train.select(with_neg).select_columns(["anchor", "positive", "negative"])
    if without:
        out["pairs"] = train.select(without).select_columns(["anchor", "positive"])
    return out


class ClickTrainer:
    """Trains one candidate and registers it; the registry sees it only once it is complete."""

    def __init__(self, registry: ModelRegistry, settings: ClicktuneSettings, config: TrainingConfig | None = None):
        self.registry = registry
        self.settings = settings
        self.config = config or TrainingConfig.from_settings(settings)

    def starting_model(self) -> tuple[SentenceTransformer, str | None]:
        champion = self.registry.current()
        if self.config.start_from == "champion":
            return self.registry.load_model(champion), champion
        model = load_sentence_transformer(
            self.settings.base_model, device=self.settings.device, allow_download=self.settings.allow_download
        )
        return model, champion

    def train(self, train: Dataset, *, info: dict[str, Any] | None = None) -> TrainingResult:
        import torch
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        from sentence_transformers.base.sampler import BatchSamplers
        from transformers import PrinterCallback, set_seed

        from clicktune.scheduler.training_progress import TrainingProgress, quiet_trainer

        fail_point("train")
        if len(train) < self.config.min_pairs:
            raise NotEnoughPairsError(
                f"{len(train)} training pairs, fewer than train_min_pairs={self.config.min_pairs}: collect more clicks"
            )
        started = time.perf_counter()
        set_seed(self.config.seed)
        model, parent = self.starting_model()
        serving_length = self.settings.max_seq_length or model.max_seq_length
        if self.config.max_seq_length:
            model.max_seq_length = self.config.max_seq_length
        datasets = prepare_datasets(train, self.config.seed, self.config.max_rows)
        rows = sum(len(d) for d in datasets.values())
        loss = build_loss(model, self.config)
        with tempfile.TemporaryDirectory(prefix="clicktune-train-") as output_dir:
            args = SentenceTransformerTrainingArguments(
                output_dir=output_dir,
                num_train_epochs=self.config.epochs,
                per_device_train_batch_size=self.config.batch_size,
                learning_rate=self.config.learning_rate,
                warmup_steps=self.config.warmup_ratio,  # a float is a ratio in Transformers v5
                batch_sampler=BatchSamplers.NO_DUPLICATES,
                seed=self.config.seed,
                data_seed=self.config.seed,
                save_strategy="no",
                report_to="none",
                logging_steps=max(1, rows // (self.config.batch_size * 5)),
                disable_tqdm=True,  # its bar writes the log dicts to stdout: TrainingProgress reports instead
                dataloader_drop_last=False,
                dataloader_pin_memory=torch.cuda.is_available(),
                bf16=self.config.bf16,
                use_cpu=not torch.cuda.is_available(),
            )
            trainer = quiet_trainer(SentenceTransformerTrainer)(
                model=model, args=args, train_dataset=datasets if len(datasets) > 1 else next(iter(datasets.values())),
                loss=loss,
            )
            trainer.remove_callback(PrinterCallback)  # disable_tqdm's stand-in prints each log dict to stdout
            trainer.add_callback(TrainingProgress(self.config.show_progress))
            output = trainer.train()
        model.max_seq_length = serving_length
        seconds = time.perf_counter() - started
        config = asdict(self.config)
        record = {
            "base_model": self.settings.base_model,
            "training": {
                "kind": "clicks",
                "start_from": self.config.start_from,
                "pairs": len(train),
                "rows_trained": rows,
                "datasets": {k: len(v) for k, v in datasets.items()},
                "seconds": round(seconds, 2),
                "train_loss": getattr(output, "training_loss", None),
                "config": config,
                **(info or {}),
            },
        }
        version = self.registry.register(model, record, parent=parent, status="candidate")
        log.info("trained candidate %s from %s on %d pairs in %.1fs", version, parent, len(train), seconds)
        return TrainingResult(version, parent, len(train), rows, seconds, getattr(output, "training_loss", None), config)
