"""``python -m repronets.<paper>``: errors a user can act on are one line, not a traceback."""

import subprocess
import sys

import pytest
from repronets.core import data
from repronets.runs import cli


def test_missing_data_is_one_line_naming_the_dataset(tmp_path, capsys):
    def run(p, store):
        raise data.DatasetNotFound("dataset 'mnist' not found under /nowhere; set REPRONETS_DATA or download: true")

    assert cli.experiment_main("00_data_and_baselines", run, ["--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: dataset 'mnist' not found under /nowhere; set REPRONETS_DATA or download: true\n"


def test_an_interrupt_says_the_runs_are_kept(tmp_path, capsys):
    def run(p, store):
        raise KeyboardInterrupt

    assert cli.experiment_main("00_data_and_baselines", run, ["--runs", str(tmp_path)]) == 130
    assert "finished runs are kept" in capsys.readouterr().err


@pytest.mark.slow
def test_the_module_prints_no_traceback_for_missing_data(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "repronets.tau", "--profile", "paper", "--runs", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env={"REPRONETS_DATA": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr and "mnist" in out.stderr.lower(), out.stderr
