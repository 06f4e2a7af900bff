#!/usr/bin/env bash
# Rebuild every figure and table:       ./run_all.sh [--profile smoke|quick|paper] [-j N] [--force] [NOTEBOOK ...]
# Run the tests:                         ./run_all.sh test [PYTEST ARGS ...]
#
# Environment: an active conda env or virtualenv is used as it is (the project is pip-installed into it if it
# cannot import repronets). With none active, ./.venv is created with pip and kept up to date with pyproject.toml.
# The notebooks always run in a kernel of the Python that runs this script.
set -euo pipefail
cd "$(dirname "$0")"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    echo
fi

log() { echo "run_all.sh: $*" >&2; }

EXTRA=()
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    PY="$VIRTUAL_ENV/bin/python"
elif [[ -n "${CONDA_PREFIX:-}" && "${CONDA_DEFAULT_ENV:-base}" != "base" ]]; then
    PY="$CONDA_PREFIX/bin/python"
else
    PY=".venv/bin/python"
    # torchvision>=0.29 brings the torch it was built for; a torch installed on its own may not match it.
    EXTRA=("torchvision>=0.29")
    if [[ ! -x "$PY" ]]; then
        log "no environment active: creating .venv (once; torch and its libraries are a few GB)"
        python3 -m venv .venv
    fi
fi

# (Re)install when the dependency list changed since the last install into this environment.
deps_hash=$(cat pyproject.toml | sha256sum | cut -c1-16)
stamp="$("$PY" -c 'import sys; print(sys.prefix)')/.repronets-deps-$deps_hash"
if [[ ! -e "$stamp" ]] || ! "$PY" -c "import repronets" 2>/dev/null; then
    log "installing the project and its dependencies into $("$PY" -c 'import sys; print(sys.prefix)')"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet "${EXTRA[@]}" -e .
    "$PY" -m ipykernel install --sys-prefix --name repronets --display-name "Python (repronets)" >/dev/null
    rm -f "$("$PY" -c 'import sys; print(sys.prefix)')"/.repronets-deps-*
    touch "$stamp"
fi

if [[ "${1:-}" == "test" ]]; then
    shift
    exec "$PY" -m pytest "$@"
fi
exec "$PY" -m repronets.pipeline "$@"
