"""repronets: the reproducible companion to four deep-learning papers.

Layers, each importing only those before it (tests/test_import_graph.py checks it):

- :mod:`repronets.core`      the library's shared pieces: registries, data, the training loop, numerics, files
- :mod:`repronets.runs`      runs and their store: parameters, run keys and results, executors, provenance, CLI
- :mod:`repronets.report`    plotting, interactive explorers, the claims ledger
- the papers, one package each, models first (their ``__init__`` needs torch only), then ``experiment``,
  ``analysis``, ``explore``: :mod:`repronets.baselines` (notebook 00), :mod:`repronets.tau` (paper 1),
  :mod:`repronets.continuous` (2), :mod:`repronets.sss` (3), :mod:`repronets.jeidnn` (4)
- :mod:`repronets.build`     the notebooks' session, the papermill pipeline, README blocks, site, verify, stability

Importing the package pins the CPU kernels (:func:`repronets.core.numerics.pin`): import it before torch and numpy. It
also makes the folders named by REPRONETS_RUNS, REPRONETS_DATA and REPRONETS_CACHE absolute, resolved against the
directory the command runs in, so every process it starts (the notebooks' kernels run in notebooks/) uses the same
folders.
"""

import os as _os

from .core import numerics as _numerics

_numerics.pin()

PATH_VARIABLES = ("REPRONETS_RUNS", "REPRONETS_DATA", "REPRONETS_CACHE")
for _name in PATH_VARIABLES:
    if _os.environ.get(_name):
        _os.environ[_name] = _os.path.abspath(_os.path.expanduser(_os.environ[_name]))

__version__ = "0.1.0"
