import sys

from ..runs.cli import experiment_main
from .experiment import run

sys.exit(experiment_main("04_dynamic_exits", run))
