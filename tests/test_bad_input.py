"""Bad input gets a clear error that names the file, key or variable at fault, before any work: one row per case.

The cases of the bad-input issue that this module covers so far; each row: what is done, the error it must raise and
the words its message must contain.
"""

import shutil
from pathlib import Path

import pytest
from repronets import claims, executors, params, pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path):
    """A copy of the project's notebooks, parameters and claim files, to break."""
    for folder in ("notebooks", "params", "claims"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return pipeline.Project(tmp_path)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path} no longer holds {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _duplicate_seeds(project):
    _edit(project.params_dir / "smoke" / "00_data_and_baselines.yaml", "seeds: [0]", "seeds: [0, 0, 0]")


def _latin1_params(project):
    path = project.params_dir / "smoke" / "00_data_and_baselines.yaml"
    path.write_bytes(path.read_bytes() + "# café\n".encode("latin-1"))


def _claim_key_twice(project):
    _edit(
        project.root / "claims" / "01_tau_speedup.yaml",
        "  comparison: above\n",
        "  comparison: above\n  comparison: below\n",
    )


def _claim_typo(project):
    _edit(project.root / "claims" / "01_tau_speedup.yaml", "  margin:", "  margn:")


PLAN_CASES = {
    # case: (how to break the project, the notebook, words the BuildError must contain)
    "duplicate seeds are refused, naming the key": (
        _duplicate_seeds,
        "00_data_and_baselines",
        ["'seeds'", "0 given more than once"],
    ),
    "a params file not in UTF-8 names the file": (
        _latin1_params,
        "00_data_and_baselines",
        ["00_data_and_baselines.yaml", "UTF-8"],
    ),
    "a claim file's key given twice is refused": (_claim_key_twice, "01_tau_speedup", ["01_tau_speedup.yaml", "twice"]),
    "a claim file's unknown key is found before any work": (
        _claim_typo,
        "01_tau_speedup",
        ["01_tau_speedup.yaml", "margn"],
    ),
}


@pytest.mark.parametrize("case", sorted(PLAN_CASES))
def test_a_broken_input_stops_the_build_before_any_notebook_runs(project, case):
    breaks, notebook, words = PLAN_CASES[case]
    breaks(project)
    with pytest.raises(pipeline.BuildError) as e:
        pipeline.plan(project, "smoke", [notebook])
    for word in words:
        assert word in str(e.value), (case, str(e.value))


def test_editing_a_claim_file_rebuilds_its_notebook(project):
    before = pipeline.input_hash(project, "01_tau_speedup", "smoke")
    _edit(project.root / "claims" / "01_tau_speedup.yaml", "  margin: 0", "  margin: 1")
    assert pipeline.input_hash(project, "01_tau_speedup", "smoke") != before


@pytest.mark.parametrize("text", ["garbage", "local", '["local"]', '{"name": "nowhere"}'])
def test_a_bad_executor_variable_is_named(monkeypatch, text):
    monkeypatch.setenv(executors.ENV, text)
    with pytest.raises(ValueError, match=f"{executors.ENV}="):
        executors.ExecutorConfig.from_env()


def test_a_negative_wait_timeout_is_refused():
    with pytest.raises(ValueError, match="wait_timeout_s"):
        executors.ExecutorConfig(name="local", wait_timeout_s=-5)


@pytest.mark.parametrize("main", [pipeline.main, __import__("repronets.verify").verify.main])
def test_a_negative_notebook_timeout_is_refused(main, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--profile", "smoke", "--timeout", "-5"])
    assert e.value.code == 2 and "--timeout -5" in capsys.readouterr().err


def test_list_parameters_hold_each_value_once():
    with pytest.raises(params.ParamsError, match=r"key 'datasets': 'digits' given more than once"):
        params.validate(
            params.schema_for("00_data_and_baselines"),
            {**params.as_dict(params.load("00_data_and_baselines", "smoke")), "datasets": ["digits", "digits"]},
            source="test",
        )
    assert claims.load_claims(ROOT / "claims" / "01_tau_speedup.yaml")  # the real files stay valid
