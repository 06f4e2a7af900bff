import sys

from ..runs.cli import experiment_main
from .experiment import complexity, export, run


def run_all(p, store):
    complexity(p, store)
    return run(p, store)


sys.exit(experiment_main("03_sss_benchmarks", run_all, export=export))
