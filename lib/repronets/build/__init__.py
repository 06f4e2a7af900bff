"""The build of notebooks, ledgers and site, the top layer (``run_all.sh``); nothing in the library imports it.

- :mod:`.session`    what a notebook calls first: validated params, output folder, provenance of each output
- :mod:`.pipeline`   papermill execution of the notebooks: plan, schedule, publish (``run_all.sh``)
- :mod:`.project`    the project's folders; :mod:`.hashing` the inputs that decide an output; :mod:`.kernels`
  the notebook processes; :mod:`.publish` locks, staging and the manifest
- :mod:`.readme`     the README's blocks generated from the outputs
- :mod:`.site`       the results site (Sphinx, myst-nb)
- :mod:`.verify`     rebuild from an empty store and compare with the published outputs
- :mod:`.stability`  rebuild under other floating-point noise and compare verdicts
"""
