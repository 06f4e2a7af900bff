"""The explorers (repronets.report.explore and each paper's explore.explorer): controls offer only what the runs hold, a
change redraws the widget's view from stored results without training, and the displayed output carries a static
PNG beside the widget for front ends without widgets (papermill, the results site)."""

import base64
import io

import numpy as np
import pytest
from PIL import Image
from repronets.baselines import experiment as baselines
from repronets.baselines import explore as baselines_explore
from repronets.continuous import experiment as continuous_experiment
from repronets.continuous import explore as continuous_explore
from repronets.jeidnn import experiment as jeidnn_experiment
from repronets.jeidnn import explore as jeidnn_explore
from repronets.report import explore
from repronets.report.plotting import plt
from repronets.runs import params, results
from repronets.sss import experiment as sss_experiment
from repronets.sss import explore as sss_explore
from repronets.tau import experiment as tau_experiment
from repronets.tau import explore as tau_explore

ROWS = [("a", 1), ("a", 2), ("b", 3)]  # (letter, number) pairs that exist; ("b", 1) does not


def toy(drawn: list) -> explore.Explorer:
    def draw(letter, number):
        drawn.append((letter, number))
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.bar([0], [number])
        ax.set_title(letter)
        return fig

    return explore.Explorer(
        "toy",
        [
            explore.Control("letter", lambda s: [(x, x) for x in explore.distinct(r[0] for r in ROWS)]),
            explore.Control("number", lambda s: [(str(n), n) for l, n in ROWS if l == s["letter"]], slider=True),
        ],
        draw,
    )


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def shown_png(output_widget) -> bytes:
    (out,) = output_widget.outputs
    return base64.b64decode(out["data"]["image/png"])


def test_controls_offer_only_combinations_that_exist():
    e = toy([])
    assert e.selection == {"letter": "a", "number": 1}
    assert e.select(letter="b") == {"letter": "b", "number": 3}  # 1 is no choice under "b": its first option
    assert e.resolve({"letter": "a", "number": 2}) == {"letter": "a", "number": 2}
    assert e.resolve({"letter": "zzz"}) == {"letter": "a", "number": 1}


def test_a_control_without_choices_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'x'"):
        explore.Explorer("empty", [explore.Control("x", lambda s: [])], lambda x: None)


def test_moving_a_widget_redraws_the_view_and_narrows_the_next_control():
    drawn = []
    e = toy(drawn)
    box = e.widget()
    letter, number = box.children[1].children
    first = shown_png(box.children[2])
    assert list(number.options) == [("1", 1), ("2", 2)]
    letter.value = "b"  # as the front end does when the user picks "b"
    assert e.selection == {"letter": "b", "number": 3}
    assert list(number.options) == [("3", 3)] and number.value == 3
    assert drawn == [("a", 1), ("b", 3)], "one redraw per change, none for the options' update"
    assert not np.array_equal(pixels(first), pixels(shown_png(box.children[2])))


def test_show_publishes_the_widget_and_a_static_png(monkeypatch):
    published = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: published.append((obj, raw)))
    e = toy([])
    e.show()
    ((bundle, raw),) = published
    assert raw
    assert bundle[explore.WIDGET_VIEW]["model_id"] == e.widget().model_id
    assert base64.b64decode(bundle["image/png"]) == e.png(**e.selection)


# --------------------------------------------------------------------------- each paper's explorer on smoke runs


def smoke_runs(module, notebook):
    return module.run(params.load(notebook, "smoke"), results.RunStore())


PAPERS = {
    "baselines": (baselines, "00_data_and_baselines", baselines_explore.explorer),
    "tau": (tau_experiment, "01_tau_speedup", tau_explore.explorer),
    "continuous": (continuous_experiment, "02_continuousnet_tables", continuous_explore.explorer),
    "sss": (sss_experiment, "03_sss_benchmarks", sss_explore.explorer),
    "jeidnn": (jeidnn_experiment, "04_dynamic_exits", lambda runs: jeidnn_explore.explorer(runs, 0.05)),
}


@pytest.mark.slow
@pytest.mark.parametrize("paper", PAPERS)
def test_every_choice_of_each_paper_explorer_draws_a_different_view(paper, monkeypatch):
    module, notebook, make = PAPERS[paper]
    runs = smoke_runs(module, notebook)
    monkeypatch.setattr(results.RunStore, "run", lambda *a, **k: pytest.fail("an explorer trained a run"))
    e = make(runs)
    start = e.png(**e.selection)
    changed = 0
    for c in e.controls:
        options = [v for _, v in c.options(e._before(c))]
        assert e.selection[c.name] in options
        for value in options:
            if value != e.selection[c.name]:
                view = e.png(**{**e.selection, c.name: value})
                assert not np.array_equal(pixels(view), pixels(start)), f"{c.name}={value!r} changed nothing"
                changed += 1
    assert changed, "no control of this explorer offers a second choice on the smoke runs"


@pytest.mark.slow
def test_the_tau_explorer_draws_the_chosen_runs_curves():
    runs = smoke_runs(tau_experiment, "01_tau_speedup")
    e = tau_explore.explorer(runs)
    modes = [v for _, v in e.controls[2].options(e._before(e.controls[2]))]
    assert len(modes) > 1
    for mode in modes:
        selection = e.resolve({**e.selection, "mode": mode})
        fig = e.figure(**selection)
        drawn = sorted(tuple(line.get_ydata()) for line in fig.axes[0].get_lines())
        plt.close(fig)
        wanted = sorted(
            tuple(r.result["test_accs"])
            for r in runs
            if tau_explore.mode_label(r.params) == mode
            and (r.params["dataset"], r.params["T"]) == (selection["dataset"], selection["T"])
        )
        assert drawn == wanted, mode
