import ast
import json
from pathlib import Path

import pytest
import yaml
from repronets.core.data import DATASETS
from repronets.runs import params

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "00_data_and_baselines"


def write(tmp_path, profile, name, text):
    path = tmp_path / profile / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def quick_values():
    return yaml.safe_load((ROOT / "params" / "quick" / f"{NOTEBOOK}.yaml").read_text())


def test_every_notebook_has_a_valid_params_file_per_profile():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for nb in notebooks:
        for profile in params.PROFILES:
            p = params.load(nb, profile)
            assert isinstance(p, params.schema_for(nb))


def test_parameters_cell_holds_literals_equal_to_the_quick_profile():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters'"
        values = {}
        for node in ast.parse("".join(cells[0]["source"])).body:
            assert isinstance(node, ast.Assign), f"{path.name}: parameters cell may hold assignments only"
            values[node.targets[0].id] = ast.literal_eval(node.value)  # raises unless a literal
        assert values.pop("profile") == "quick"
        values.pop("output_dir")
        assert values == yaml.safe_load((ROOT / "params" / "quick" / f"{path.stem}.yaml").read_text())
        assert params.from_namespace(path.stem, values) == params.load(path.stem, "quick")


def test_unknown_key_names_file_key_allowed_keys_and_a_suggestion(tmp_path):
    values = quick_values() | {"epoch": 3}
    path = write(tmp_path, "quick", NOTEBOOK, yaml.safe_dump(values))
    with pytest.raises(params.ParamsError) as e:
        params.load(NOTEBOOK, "quick", tmp_path)
    msg = str(e.value)
    assert str(path) in msg and "unknown key 'epoch'" in msg and "did you mean 'epochs'" in msg and "'lr'" in msg


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("epochs", "ten", "expected an integer, got 'ten'"),
        ("epochs", 2.5, "expected an integer"),
        ("epochs", True, "expected an integer"),
        ("lr", "fast", "expected a number"),
        ("download", "yes", "expected true or false"),
        ("seeds", 3, "expected a list"),
        ("seeds", [], "non-empty list"),
        ("epochs", 0, "out of range"),
        ("lr", 0.0, "out of range"),
        ("samples_per_class", 21, "out of range"),
        ("datasets", ["digits", "imagenet"], "element 1: got 'imagenet'"),
        ("device", "tpu", "got 'tpu'"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(tmp_path, key, value, expected):
    path = write(tmp_path, "quick", NOTEBOOK, yaml.safe_dump(quick_values() | {key: value}))
    with pytest.raises(params.ParamsError) as e:
        params.load(NOTEBOOK, "quick", tmp_path)
    msg = str(e.value)
    assert str(path) in msg and f"key {key!r}" in msg and expected in msg and "allowed:" in msg


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    write(tmp_path, "quick", NOTEBOOK, yaml.safe_dump(quick_values() | {"datasets": ["cifar-10"]}))
    with pytest.raises(params.ParamsError) as e:
        params.load(NOTEBOOK, "quick", tmp_path)
    assert all(repr(d) in str(e.value) for d in DATASETS)


def test_every_problem_is_reported_at_once(tmp_path):
    values = quick_values() | {"epochs": -1, "lr": "x", "bogus": 1}
    del values["hidden"]
    write(tmp_path, "quick", NOTEBOOK, yaml.safe_dump(values))
    with pytest.raises(params.ParamsError) as e:
        params.load(NOTEBOOK, "quick", tmp_path)
    msg = str(e.value)
    for fragment in ("'epochs'", "'lr'", "unknown key 'bogus'", "missing key 'hidden'"):
        assert fragment in msg


def test_int_is_accepted_where_a_float_is_expected(tmp_path):
    write(tmp_path, "quick", NOTEBOOK, yaml.safe_dump(quick_values() | {"lr": 1}))
    p = params.load(NOTEBOOK, "quick", tmp_path)
    assert p.lr == 1.0 and isinstance(p.lr, float)


def test_missing_file_unknown_profile_unknown_notebook_bad_yaml(tmp_path):
    with pytest.raises(params.ParamsError, match="params file missing.*create it with the keys"):
        params.load(NOTEBOOK, "quick", tmp_path)
    with pytest.raises(params.ParamsError, match="unknown profile 'fast'.*smoke"):
        params.load(NOTEBOOK, "fast", tmp_path)
    with pytest.raises(params.ParamsError, match="unknown notebook 'nope'.*00_data_and_baselines"):
        params.load("nope", "quick", tmp_path)
    write(tmp_path, "quick", NOTEBOOK, "epochs: [1,\n")
    with pytest.raises(params.ParamsError, match="not valid YAML"):
        params.load(NOTEBOOK, "quick", tmp_path)
    write(tmp_path, "quick", NOTEBOOK, "- 1\n- 2\n")
    with pytest.raises(params.ParamsError, match="expected a mapping"):
        params.load(NOTEBOOK, "quick", tmp_path)


def test_notebook_namespace_is_validated_like_a_file():
    ns = quick_values() | {"profile": "quick", "output_dir": "", "epochs": "many", "unrelated_global": 1}
    with pytest.raises(params.ParamsError, match="parameters cell.*'epochs'.*expected an integer"):
        params.from_namespace(NOTEBOOK, ns, source="the parameters cell")
    ns.pop("hidden")
    with pytest.raises(params.ParamsError, match="missing keys \\['hidden'\\]"):
        params.from_namespace(NOTEBOOK, ns)


def test_extra_schemas_from_the_environment(monkeypatch):
    monkeypatch.setenv("REPRONETS_SCHEMAS", "mine=repronets.baselines.experiment:Params")
    assert params.schema_for("mine").__name__ == "Params"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("lr: .inf", r"key 'lr': got inf, not a finite number"),
        ("lr: .nan", r"key 'lr': got nan, not a finite number"),
        ("lr: 5e-2", r"key 'lr': expected a number, got the string '5e-2'.*write 0\.05"),
    ],
)
def test_numbers_that_are_not_finite_or_read_as_text_are_named(tmp_path, line, expected):
    text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in quick_values().items() if k != "lr") + f"\n{line}\n"
    write(tmp_path, "quick", NOTEBOOK, text)
    with pytest.raises(params.ParamsError, match=expected):
        params.load(NOTEBOOK, "quick", tmp_path)


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in quick_values().items()) + "\nepochs: 7\n"
    path = write(tmp_path, "quick", NOTEBOOK, text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("epochs:"))
    with pytest.raises(
        params.ParamsError, match=rf"{path}: not valid YAML: .*key 'epochs' given twice \(lines {line} and"
    ):
        params.load(NOTEBOOK, "quick", tmp_path)


def test_a_key_the_pipeline_sets_is_refused_in_a_params_file(tmp_path):
    text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in quick_values().items()) + "\ndry_run: true\n"
    write(tmp_path, "quick", NOTEBOOK, text)
    with pytest.raises(params.ParamsError, match=r"\['dry_run'\] are set by run_all.sh"):
        params.load(NOTEBOOK, "quick", tmp_path)


def test_a_dry_run_shortens_and_never_lengthens():
    paper = params.dry_run(params.load("02_continuousnet_tables", "paper"))
    assert (paper.epochs, paper.train_limit, paper.test_limit, paper.widen_factor, paper.dry_run) == (
        4,
        256,
        200,
        1,
        True,
    )
    assert paper.rows == params.load("02_continuousnet_tables", "paper").rows  # every row kept
    smoke = params.load("02_continuousnet_tables", "smoke")
    dry = params.dry_run(smoke)
    assert dry.epochs == min(smoke.epochs, 4) and dry.train_limit == min(smoke.train_limit, 256)
    assert params.as_dict(dry) == {
        **params.as_dict(smoke),
        **{k: getattr(dry, k) for k in params.dry_values(type(smoke))},
    }
    sss = params.dry_run(params.load("03_sss_benchmarks", "smoke"))
    assert sss.repeats == min(params.load("03_sss_benchmarks", "smoke").repeats, 2)
    # seeds: the first only (the others are the same runs again)
    assert paper.seeds == [0] and params.load("02_continuousnet_tables", "paper").seeds == [0, 1, 2]
    assert params.dry_run(params.load("04_dynamic_exits", "paper")).exit_seeds == [0]
    assert params.dry_run(params.load("01_tau_speedup", "paper")).seeds == [0]
