"""Run a method on bundled inputs (``python -m servers.w2s.runner``); what a sandbox executes.

Three uses:

* an agent checking a method on a task's public inputs (seed 0, validation split):
  ``--task NAME --entry method.py:method --out predictions.txt`` reads ``/tasks/NAME/validation.pt``;
* the server asking which strong-model mode a method declares (``@finetunes`` or not):
  ``--entry method.py:method --declare-mode mode.txt``;
* the server running one official run, alone in its own sandbox:
  ``--entry method.py:method --bundle run.pt --out predictions.txt``.

A method that raises ends the run with its traceback on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

from servers.w2s.api import Method, strong_mode
from servers.w2s.bundle import format_predictions, load_bundle

__all__ = ["load_entry", "main", "run_bundle"]

PUBLIC_INPUTS = Path("/tasks")


def load_entry(entry: str) -> Method:
    """The callable named by ``path/to/file.py:name`` (its folder joins sys.path) or ``package.module:name``."""
    target, _, name = entry.rpartition(":")
    if not target or not name:
        raise ValueError(f"entry point {entry!r} must look like 'method.py:method' or 'package.module:method'")
    if target.endswith(".py"):
        path = Path(target).resolve()
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    method = getattr(module, name, None)
    if not callable(method):
        raise ValueError(f"{target} has no callable {name!r}")
    loaded: Method = method
    return loaded


def run_bundle(method: Method, bundle: Path) -> str:
    """The method's predictions for one bundle, as '0'/'1' text."""
    inp = load_bundle(bundle)
    return format_predictions(method(inp), len(inp.eval_texts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.w2s.runner", description=__doc__.splitlines()[0])
    parser.add_argument("--entry", required=True, help="method.py:method or package.module:method")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", help=f"run on {PUBLIC_INPUTS}/TASK/validation.pt")
    what.add_argument("--bundle", type=Path, help="run on one bundle file")
    what.add_argument("--declare-mode", type=Path, metavar="FILE", help="write the method's strong-model mode")
    parser.add_argument("--inputs", type=Path, default=PUBLIC_INPUTS, help="folder of the public task inputs")
    parser.add_argument("--out", type=Path, default=Path("predictions.txt"), help="predictions file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    method = load_entry(args.entry)
    if args.declare_mode is not None:
        args.declare_mode.write_text(strong_mode(method) + "\n")
        return 0
    bundle = args.bundle if args.bundle is not None else args.inputs / args.task / "validation.pt"
    args.out.write_text(run_bundle(method, bundle) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
