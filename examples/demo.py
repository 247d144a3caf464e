"""`make demo`: the whole loop on SciFact, embedded, with a before/after report in demo-report/.

An app wires the two sides together: the plugin's vector store serves searches and takes clicks, the
scheduler's loop trains, judges and promotes. So this script (like any app) imports both, and hands
the store to ``clicktune.scheduler.demo``. (``clicktune demo`` runs the same from an installed wheel,
finding the store class through its entry point.)

    python examples/demo.py [--seed 0] [--rounds 2] [--phase-rounds 4] [--epochs 3] [--max-seq-length 128]
"""

from __future__ import annotations

from clicktune.adapters import ClicktuneSettings
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.demo import main


def open_store(settings: ClicktuneSettings) -> ClicktuneVectorStore:
    # No registry watcher: the demo's own loop promotes, in this process.
    return ClicktuneVectorStore(settings, embeddings=ClicktuneEmbeddings(settings, watch=False))


if __name__ == "__main__":
    main(store_factory=open_store)
