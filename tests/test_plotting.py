import json

import pandas as pd
import pytest
from repronets.build import session
from repronets.core import fileio
from repronets.report import plotting
from repronets.report.plotting import plt
from repronets.runs import params, provenance


def test_figures_are_png_and_pdf_and_the_pdf_is_reproducible(tmp_path):
    plotting.use_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [1, 0, 1])
    png, pdf = plotting.save_figure(fig, tmp_path, "curve")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    first = pdf.read_bytes()
    plotting.save_figure(fig, tmp_path, "curve")
    assert pdf.read_bytes() == first
    plt.close(fig)


def test_tables_as_markdown_booktabs_latex_and_csv(tmp_path):
    df = pd.DataFrame({"model": ["a", "b"], "acc": [0.91234567, float("nan")]})
    md, tex, csv = plotting.save_table(df, tmp_path, "acc", caption="Accuracy.", precision=3)
    assert "| model" in md.read_text() and "0.912" in md.read_text() and md.read_text().startswith("Accuracy.")
    text = tex.read_text()
    assert "\\toprule" in text and "\\midrule" in text and "\\bottomrule" in text and "\\caption{Accuracy.}" in text
    assert "0.912" in text and "--" in text
    assert pd.read_csv(csv).model.tolist() == ["a", "b"]


def test_session_records_provenance_of_each_output(tmp_path):
    ns = {
        "profile": "smoke",
        "output_dir": str(tmp_path / "out"),
        "device": "cpu",
        "data_root": "",
        "download": False,
        "datasets": ["digits"],
        "train_limit": 50,
        "models": ["softmax"],
        "hidden": 4,
        "epochs": 1,
        "batch_size": 10,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "seeds": [0],
        "samples_per_class": 2,
        "batch_runs": True,
    }
    s = session.start("00_data_and_baselines", ns)
    run = s.store.run("demo", {"seed": 3}, lambda p, c: {"acc": 1.0})
    fig, ax = plt.subplots()
    s.figure(fig, "f", runs=[run], data="digits")
    s.table(pd.DataFrame({"a": [1]}), "t", caption="c")
    record = json.loads((tmp_path / "out" / provenance.OUTPUTS_RECORD).read_text())
    assert set(record) == {"f.png", "f.pdf", "t.md", "t.tex", "t.csv"}
    assert record["f.png"]["runs"][0]["seed"] == 3 and record["f.png"]["data"] == ["digits"]
    assert record["f.png"]["device"].startswith("cpu") and record["t.md"]["kind"] == "table"


def test_bad_parameters_stop_the_session_before_any_output(tmp_path):
    ns = {"profile": "quick", "output_dir": str(tmp_path / "out"), "epochs": 0}
    with pytest.raises(
        params.ParamsError,
        match=r"^notebook '00_data_and_baselines' parameters \(profile 'quick'\): missing keys \['device', .*'seeds', "
        r"'samples_per_class', 'batch_runs'\] for notebook '00_data_and_baselines'$",
    ):
        session.start("00_data_and_baselines", ns)
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match=f"output folder {blocker / 'out'} is not writable"):
        fileio.check_writable(blocker / "out")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.json"
    fileio.write_json(path, {"a": 1})

    def explode(f):
        f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fileio.atomic_write(path, explode)
    assert json.loads(path.read_text()) == {"a": 1} and len(list(tmp_path.iterdir())) == 1
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


NB = "00_data_and_baselines"


def namespace(profile, tmp_path, **changes):
    """A notebook's globals as papermill leaves them: the quick literals, then the injected keys."""
    quick = params.as_dict(params.load(NB, "quick"))
    return {"profile": profile, "output_dir": str(tmp_path / "out"), **quick, "In": [""], "Out": {}, **changes}


def test_profile_under_papermill_loads_that_profile_and_keeps_injected_keys(tmp_path, monkeypatch):
    monkeypatch.delenv(params.INJECTED_FROM, raising=False)
    smoke = params.load(NB, "smoke")
    assert session.start(NB, namespace("smoke", tmp_path)).params == smoke
    s = session.start(NB, namespace("smoke", tmp_path, epochs=7))
    assert s.params.epochs == 7 and s.params.train_limit == smoke.train_limit  # the injected key, the rest smoke's
    assert session.start(NB, namespace("quick", tmp_path)).params == params.load(NB, "quick")


def test_run_all_sh_injected_values_are_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setenv(params.INJECTED_FROM, "params/paper/x.yaml")  # a parameter set's whole file was injected
    assert session.start(NB, namespace("smoke", tmp_path)).params == params.load(NB, "quick")


def test_an_injected_key_that_is_no_parameter_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(params.INJECTED_FROM, raising=False)
    with pytest.raises(params.ParamsError, match=r"unknown key 'epoch' \(did you mean 'epochs'\?\); allowed keys: \["):
        session.start(NB, namespace("smoke", tmp_path, epoch=3))
