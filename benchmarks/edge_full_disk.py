"""Benchmark: a store whose edge folder sits on a small disk, written until the disk refuses.

Usage (as root, for the small disk):
    mkdir -p /mnt/x && mount -t tmpfs -o size=40m tmpfs /mnt/x
    python benchmarks/edge_full_disk.py --qdrant-path /mnt/x/qdrant --floor-mb 8
    umount /mnt/x

Each step runs in its own process, so a SIGBUS (the edge engine's memory-mapped files on a full disk)
shows up as a return code instead of ending the benchmark:
1. ``write``: a ClicktuneVectorStore (registry and feedback database under a temporary home on the
   normal disk; only the Qdrant folder on the small one) adds ``--batch`` documents per call until a
   call raises DiskFullError (or the process dies);
2. the rest of the small disk is filled with a file, to 0 bytes free;
3. ``read``: a new process opens the store on the full disk, counts every acknowledged document, runs
   a search, and tries one more write (which must be refused).
Prints one JSON object on stdout; run once with ``--floor-mb 0`` to see what the floor prevents. On
tmpfs a write also keeps room for what the next load allocates (adapters/qdrant/edge/space.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = ("heart blood rain cloud bone fracture river stone light cell protein gene virus water salt "
         "enzyme membrane signal neuron muscle lung liver kidney tissue growth").split()


def texts(start: int, count: int, words: int) -> list[str]:
    return [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words)) + f" doc {i}"
            for i in range(start, start + count)]


def store(home: str, qdrant_path: str, floor_mb: float):  # noqa: ANN201 - the child's store
    from clicktune.adapters import ClicktuneSettings
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

    settings = ClicktuneSettings(home=home, qdrant_path=qdrant_path, embedded_engine="edge", progress=False,
                                 watch_registry=False, min_free_disk_mb=floor_mb)
    return ClicktuneVectorStore(settings, embeddings=ClicktuneEmbeddings(settings, watch=False))


def child_write(args: argparse.Namespace) -> dict:
    from clicktune.adapters.errors import DiskFullError

    vectorstore, writes, refused = store(args.home, args.qdrant_path, args.floor_mb), 0, None
    while writes < args.max_writes:
        start = writes * args.batch
        try:
            vectorstore.add_texts(texts(start, args.batch, args.words), ids=[f"d{i}" for i in range(start, start + args.batch)])
        except DiskFullError as exc:
            refused = str(exc)
            break
        writes += 1
        print(json.dumps({"acknowledged": writes * args.batch}), file=sys.stderr, flush=True)
    return {"writes": writes, "documents": writes * args.batch, "refused": refused,
            "free_bytes_at_refusal": shutil.disk_usage(args.qdrant_path).free}


def child_read(args: argparse.Namespace) -> dict:
    from clicktune.adapters.errors import DiskFullError

    vectorstore = store(args.home, args.qdrant_path, args.floor_mb)
    ids = [f"d{i}" for i in range(args.documents)]
    try:
        found = len(vectorstore.get_by_ids(ids))
        hits = vectorstore.similarity_search("a broken bone heals", k=3)
    except DiskFullError as exc:  # tmpfs: the collection could not be loaded
        return {"reads": f"refused (DiskFullError): {exc}", "free_bytes": shutil.disk_usage(args.qdrant_path).free}
    try:
        vectorstore.add_texts(["one more document"], ids=["extra"])
        write = "accepted"
    except DiskFullError:
        write = "refused (DiskFullError)"
    return {"documents_found": found, "search_hits": len(hits), "write": write,
            "free_bytes": shutil.disk_usage(args.qdrant_path).free}


def run_child(step: str, args: argparse.Namespace, **extra: object) -> tuple[int, dict | None]:
    command = [sys.executable, __file__, "--child", step, "--home", args.home, "--qdrant-path", args.qdrant_path,
               "--floor-mb", str(args.floor_mb), "--batch", str(args.batch), "--words", str(args.words),
               "--max-writes", str(args.max_writes)] + [f"--{k}={v}" for k, v in extra.items()]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    last = [line for line in proc.stderr.splitlines() if line.startswith('{"acknowledged"')]
    result = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None
    if result is None:
        result = {"died": True, "last_acknowledged": json.loads(last[-1])["acknowledged"] if last else 0,
                  "stderr_tail": proc.stderr[-400:]}
    return proc.returncode, result


def fill(folder: Path) -> int:
    """Write a file until the disk refuses; returns the bytes written."""
    written, chunk = 0, b"\0" * (256 * 1024)
    with open(folder / "filler", "wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(chunk)
            except OSError:
                break
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qdrant-path", required=True, help="Folder on the small disk (created).")
    parser.add_argument("--floor-mb", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=16, help="Documents per add_texts call.")
    parser.add_argument("--words", type=int, default=2000, help="Words per document.")
    parser.add_argument("--max-writes", type=int, default=100_000)
    parser.add_argument("--home")
    parser.add_argument("--child")
    parser.add_argument("--documents", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_write(args) if args.child == "write" else child_read(args)))
        return
    args.home = tempfile.mkdtemp(prefix="clicktune-full-disk-")
    qdrant = Path(args.qdrant_path)
    shutil.rmtree(qdrant, ignore_errors=True)
    report: dict = {"floor_mb": args.floor_mb, "batch": args.batch, "words": args.words,
                    "disk_bytes": shutil.disk_usage(qdrant.parent).total}
    report["write_rc"], report["write"] = run_child("write", args)
    documents = report["write"].get("documents", report["write"].get("last_acknowledged", 0))
    report["filled_bytes"] = fill(qdrant.parent)
    report["read_rc"], report["read"] = run_child("read", args, documents=documents)
    (qdrant.parent / "filler").unlink()
    report["read_after_freeing_rc"], report["read_after_freeing"] = run_child("read", args, documents=documents)
    shutil.rmtree(args.home, ignore_errors=True)
    shutil.rmtree(qdrant, ignore_errors=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
