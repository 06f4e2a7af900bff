import sys

from ..runs.cli import experiment_main
from .experiment import export, run

sys.exit(experiment_main("01_tau_speedup", run, export=export))
