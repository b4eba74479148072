"""Print the baseline table: ``python -m servers.w2s [--tasks ...] [--methods ...] [--seeds 5]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from servers.w2s.methods import BASELINES, FINETUNE_BASELINES
from servers.w2s.table import format_table, run_table
from servers.w2s.tasks import list_tasks


def main() -> None:
    known = {**BASELINES, **FINETUNE_BASELINES}
    parser = argparse.ArgumentParser(prog="python -m servers.w2s", description="W2S baseline table (mean±se).")
    parser.add_argument("--tasks", nargs="*", default=None, help=f"default: all ({', '.join(list_tasks())})")
    parser.add_argument("--methods", nargs="*", choices=sorted(known), default=sorted(BASELINES))
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--shuffled", action="store_true", help="also run the shuffled-weak-labels control")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="cache goes to DATA_DIR/w2s-cache")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    rows = run_table(
        {name: known[name] for name in args.methods},
        args.tasks,
        range(args.seeds),
        split=args.split,
        controls=("none", "shuffled") if args.shuffled else ("none",),
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
    )
    print(format_table(rows))


if __name__ == "__main__":
    main()
