"""Run a method on bundled inputs (``python -m servers.w2s.runner``); what a sandbox executes.

Two uses:

* an agent checking a method on a task's public inputs (seed 0, validation split):
  ``--task NAME --entry method.py:method --out predictions.txt`` reads ``/tasks/NAME/validation.pt``;
* the server running a submission: ``--entry method.py:method --bundles inputs --outputs outputs``
  writes ``outputs/<bundle>.txt`` per ``inputs/<bundle>.pt`` and ``outputs/mode.txt`` (the
  strong-model mode the method asks for), printing ``done i/n`` to stderr after each bundle.

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
    return method


def run_bundle(method: Method, bundle: Path) -> str:
    """The method's predictions for one bundle, as '0'/'1' text."""
    inp = load_bundle(bundle)
    return format_predictions(method(inp), len(inp.eval_texts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.w2s.runner", description=__doc__.splitlines()[0])
    parser.add_argument("--entry", required=True, help="method.py:method or package.module:method")
    parser.add_argument("--task", help=f"run on {PUBLIC_INPUTS}/TASK/validation.pt")
    parser.add_argument("--inputs", type=Path, default=PUBLIC_INPUTS, help="folder of the public task inputs")
    parser.add_argument("--out", type=Path, default=Path("predictions.txt"), help="predictions file (with --task)")
    parser.add_argument("--bundles", type=Path, help="folder of *.pt bundles (instead of --task)")
    parser.add_argument("--outputs", type=Path, help="folder for <bundle>.txt and mode.txt (with --bundles)")
    args = parser.parse_args(argv)
    if (args.task is None) == (args.bundles is None):
        parser.error("give either --task or --bundles")
    if args.bundles is not None and args.outputs is None:
        parser.error("--bundles needs --outputs")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    method = load_entry(args.entry)
    if args.task is not None:
        args.out.write_text(run_bundle(method, args.inputs / args.task / "validation.pt") + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    args.outputs.mkdir(parents=True, exist_ok=True)
    (args.outputs / "mode.txt").write_text(strong_mode(method) + "\n")
    bundles = sorted(args.bundles.glob("*.pt"))
    for done, bundle in enumerate(bundles, start=1):
        (args.outputs / f"{bundle.stem}.txt").write_text(run_bundle(method, bundle) + "\n")
        print(f"done {done}/{len(bundles)}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
