"""One loaded model version, shared by every thread that encodes with it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from clicktune.adapters.models.precision import PrecisionSetting, autocast, resolve_precision

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@dataclass
class VersionEncoder:
    """A SentenceTransformer bound to the registry version it came from.

    Hugging Face fast tokenizers raise "Already borrowed" when two threads call one tokenizer at once,
    so each forward pass holds ``lock``. Encoding goes batch by batch and the lock is taken per batch,
    so a long ``embed_documents`` never blocks a query for more than one batch. With two cores torch
    already uses both for one batch, so serialising batches costs no throughput.

    ``precision`` applies to :meth:`encode` (documents, and the gate's batched queries) and
    ``query_precision`` to :meth:`encode_query`; both are resolved on construction against the model's
    device, so after ``__init__`` they hold ``"fp32"`` or ``"bf16"``, never ``"auto"``.
    ``query_precision=None`` follows ``precision``: single-query latency measured lower in bf16 too on
    a 2-core AMD EPYC (benchmarks/precision.py, docs/RESULTS.md), so the two paths only differ when asked to.
    """

    version: str
    model: SentenceTransformer
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    precision: PrecisionSetting = "auto"
    query_precision: PrecisionSetting | None = None

    def __post_init__(self) -> None:
        device = str(self.model.device)
        self.precision = resolve_precision(self.precision, device=device)
        self.query_precision = (
            self.precision if self.query_precision is None else resolve_precision(self.query_precision, device=device)
        )

    @property
    def device_type(self) -> str:
        return str(self.model.device).split(":")[0]

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        show_progress: bool = False,
        desc: str | None = None,
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Like SentenceTransformer.encode, batch texts of similar length together (less padding),
        # but across the whole input rather than per call, since we call it once per batch.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        texts = [texts[i] for i in order]
        chunks = range(0, len(texts), batch_size)
        bar = tqdm(
            total=len(texts),
            desc=desc or f"encoding with {self.version}",
            unit="text",
            disable=not show_progress or len(texts) <= batch_size,
        )
        out: list[np.ndarray] = []
        try:
            for start in chunks:
                batch = texts[start : start + batch_size]
                with self.lock, autocast(self.precision, self.device_type):  # type: ignore[arg-type]
                    vectors = self.model.encode(
                        batch, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False
                    )
                out.append(_unit_rows(vectors))
                bar.update(len(batch))
        finally:
            bar.close()
        result = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        result[order] = np.concatenate(out, axis=0)
        return result

    def encode_at_length(self, texts: Sequence[str], max_seq_length: int, *, batch_size: int = 32) -> np.ndarray:
        """``texts`` as this model embeds them at another token limit (as another app may have set it up).

        Holds ``lock`` for the whole call and restores the limit before releasing it, so no other call
        ever encodes at the changed limit.
        """
        with self.lock, autocast(self.precision, self.device_type):  # type: ignore[arg-type]
            kept = self.model.max_seq_length
            self.model.max_seq_length = max_seq_length
            try:
                vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                                            show_progress_bar=False)
            finally:
                self.model.max_seq_length = kept
        return _unit_rows(vectors)

    def encode_query(self, text: str) -> np.ndarray:
        with self.lock, autocast(self.query_precision, self.device_type):  # type: ignore[arg-type]
            vector = self.model.encode([text], convert_to_tensor=True, show_progress_bar=False)
        return _unit_rows(vector)[0]


def _unit_rows(vectors) -> np.ndarray:  # noqa: ANN001 - a torch tensor
    """float32, unit length: normalised after leaving autocast, so bf16 never rounds the norm."""
    array = vectors.detach().float().cpu().numpy()
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def encoder_for_version(registry, version: str, settings) -> VersionEncoder:  # noqa: ANN001 - avoids an import cycle
    """Load ``version`` from the registry as an encoder in the settings' precision (documents and queries)."""
    return VersionEncoder(version=version, model=registry.load_model(version), precision=settings.precision)
