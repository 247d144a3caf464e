"""`make demo`: the whole loop on SciFact, embedded, with a before/after report in demo-report/.

An app wires the two sides together: the plugin's vector store serves searches and takes clicks, the
scheduler's loop trains, judges and promotes. So this script (like any app) imports both, and hands
the store to ``clicktune.scheduler.demo.run_demo``.

    python examples/demo.py [--seed 0] [--rounds 2] [--phase-rounds 4] [--epochs 3] [--max-seq-length 128]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.demo import DemoConfig, demo_settings, run_demo


def main() -> None:
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=defaults.data_dir, help="BEIR folder (default: bundled SciFact)")
    parser.add_argument("--demo-home", type=Path, default=defaults.home, help="scratch home, wiped at start")
    parser.add_argument("--report", type=Path, default=defaults.report_dir, help="where report.json/.png go")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="traffic rounds before training")
    parser.add_argument("--phase-rounds", type=int, default=defaults.phase_rounds,
                        help="at most this many rounds of interleaved traffic")
    parser.add_argument("--epochs", type=float, default=defaults.train_epochs)
    parser.add_argument("--max-seq-length", type=int, default=defaults.max_seq_length)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    cfg = DemoConfig(data_dir=args.data, home=args.demo_home, report_dir=args.report, rounds=args.rounds,
                     phase_rounds=args.phase_rounds, train_epochs=args.epochs, max_seq_length=args.max_seq_length,
                     train_max_seq_length=args.max_seq_length, seed=args.seed)
    settings = demo_settings(cfg)
    with ClicktuneEmbeddings(settings, watch=False) as embeddings:
        run_demo(cfg, settings, ClicktuneVectorStore(settings, embeddings=embeddings))


if __name__ == "__main__":
    main()
