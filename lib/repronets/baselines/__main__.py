import sys

from ..runs.cli import experiment_main
from .experiment import run

sys.exit(experiment_main("00_data_and_baselines", run))
