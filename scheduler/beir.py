"""Reading a BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), gzipped or not."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from clicktune.adapters.errors import ConfigurationError

#: The SciFact copy that ships with the package (package data; see data/scifact/SOURCE.md beside this file).
BUNDLED_SCIFACT = Path(__file__).resolve().parent / "data" / "scifact"


@dataclass(frozen=True)
class BeirDocument:
    doc_id: str
    title: str
    text: str

    @property
    def content(self) -> str:
        """BEIR's usual document text for dense retrieval: title + ". " + body."""
        return f"{self.title}. {self.text}" if self.title else self.text


@dataclass
class BeirDataset:
    corpus: dict[str, BeirDocument]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # split -> qid -> doc -> grade

    @classmethod
    def load(cls, folder: str | Path, splits: tuple[str, ...] = ("train", "test")) -> BeirDataset:
        root = Path(folder)
        if not root.is_dir():
            raise ConfigurationError(f"BEIR folder {root} does not exist")
        corpus = {
            str(row["_id"]): BeirDocument(str(row["_id"]), row.get("title") or "", row.get("text") or "")
            for row in _jsonl(root, "corpus")
        }
        queries = {str(row["_id"]): row["text"] for row in _jsonl(root, "queries")}
        qrels: dict[str, dict[str, dict[str, int]]] = {}
        for split in splits:
            path = root / "qrels" / f"{split}.tsv"
            if not path.exists():
                continue
            table: dict[str, dict[str, int]] = {}
            with open(path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle, delimiter="\t"):
                    table.setdefault(row["query-id"].strip(), {})[row["corpus-id"].strip()] = int(row["score"])
            qrels[split] = table
        return cls(corpus=corpus, queries=queries, qrels=qrels)

    def split_queries(self, split: str) -> dict[str, str]:
        return {qid: self.queries[qid] for qid in self.qrels.get(split, {}) if qid in self.queries}


def _jsonl(root: Path, stem: str) -> Iterator[dict]:
    for name, opener in ((f"{stem}.jsonl", open), (f"{stem}.jsonl.gz", gzip.open)):
        path = root / name
        if path.exists():
            with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
            return
    raise ConfigurationError(f"{root} has neither {stem}.jsonl nor {stem}.jsonl.gz")
