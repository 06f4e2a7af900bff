"""repronets: the reproducible companion to four deep-learning papers.

The library core, shared by all four papers:

- :mod:`repronets.params`    typed parameter schemas per notebook, YAML loading, clear errors
- :mod:`repronets.data`      datasets by name, held as tensors in memory
- :mod:`repronets.train`     the training loop: devices, seeds, progress, checkpoints, resume
- :mod:`repronets.results`   run keys, atomic result files, cached runs, DataFrames
- :mod:`repronets.plotting`  one style; figures as PNG+PDF; tables as Markdown/LaTeX/CSV
- :mod:`repronets.session`   what a notebook calls first: validated params, output folder, provenance
- :mod:`repronets.pipeline`  papermill execution, manifest, incremental rebuilds (``run_all.sh``)
- :mod:`repronets.numerics`  the CPU kernels every process computes with (pinned to AVX2 unless asked otherwise)

Importing the package pins the CPU kernels (:func:`repronets.numerics.pin`): import it before torch and numpy. It
also makes the folders named by REPRONETS_RUNS, REPRONETS_DATA and REPRONETS_CACHE absolute, resolved against the
directory the command runs in, so every process it starts (the notebooks' kernels run in notebooks/) uses the same
folders.
"""

import os as _os

from . import numerics as _numerics

_numerics.pin()

PATH_VARIABLES = ("REPRONETS_RUNS", "REPRONETS_DATA", "REPRONETS_CACHE")
for _name in PATH_VARIABLES:
    if _os.environ.get(_name):
        _os.environ[_name] = _os.path.abspath(_os.path.expanduser(_os.environ[_name]))

__version__ = "0.1.0"
