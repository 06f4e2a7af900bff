"""Run a notebook's experiments without Jupyter: ``python -m repronets.<module> --profile quick``.

The notebook only reads what these runs store, so a GPU machine or a cluster job can compute the runs
(``--profile paper``) and a laptop can draw the figures from the same run store afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from ..core import numerics
from . import executors
from . import params as params_mod
from .results import ResultsError, RunStore


def experiment_main(notebook: str, run: Callable, argv: list[str] | None = None, export: Callable | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Compute the runs of notebook {notebook} into the run store.")
    parser.add_argument("--profile", default="quick", choices=params_mod.PROFILES)
    parser.add_argument(
        "--params-dir", default=None, help="folder holding <profile>/<notebook>.yaml (default: params/)"
    )
    parser.add_argument("--runs", default=None, help="run store folder (default: $REPRONETS_RUNS or runs/)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="every run of the profile with its training cut to a step or two (params.dry_run): a check that the "
        "profile runs end to end on the data it is given; its runs have their own keys",
    )
    if export:
        parser.add_argument(
            "--export",
            default=None,
            metavar="DIR",
            help="also write each run in the original code's file format under DIR",
        )
    executors.add_arguments(parser)
    numerics.add_argument(parser)
    args = parser.parse_args(argv)
    try:
        numerics.check_argument(args)
        p = params_mod.load(notebook, args.profile, args.params_dir)
        if args.dry_run:
            p = params_mod.dry_run(p)
        store = RunStore(args.runs, executors.from_arguments(args))
        if not store.check_usable():
            print(f"note: the run store {store.root} is read-only: its finished runs are used, a missing one stops")
    except (params_mod.ParamsError, ValueError, OSError, ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        runs = run(p, store)
    except (FileNotFoundError, executors.ExecutorError) as e:  # missing data (the message says where), failed jobs
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are kept in the run store and an unfinished one resumes from its checkpoint;"
            " run the same command again to go on",
            file=sys.stderr,
        )
        return 130
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 reports and exports
        return 0
    for r in runs:
        print(f"{'cached' if r.cached else 'ran   '} {r.kind}/{r.key} {r.meta['wall_time_s']:.1f} s  {r.path}")
    if store.not_reused:
        print(f"{len(store.not_reused)} stored run(s) were computed again, because other numerics made them:")
        for name, why in sorted(store.not_reused.items()):
            print(f"  {name}: {why}")
    if export and args.export:
        paths = export(runs, args.export)
        print(f"exported {len(paths)} file(s) under {args.export}")
    return 0
