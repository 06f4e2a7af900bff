"""Explorers: interactive views over runs that are already in the run store.

An explorer is a list of controls and a drawing function. Each control's options are computed from the runs it is
given and from the values of the controls before it (so a dataset picked first narrows the time horizons offered
next, and a choice that no run has is never offered). Moving a control redraws from the stored results (and the
tensors they saved, read from disk on demand); nothing is trained.

``Explorer.show()`` displays one output that carries two representations: the ipywidgets view (JupyterLab, with a
kernel, draws the controls and redraws on change) and a PNG of the first selection. A front end without widgets
(papermill, nbconvert, GitHub, the results site) shows the PNG, so the headless build keeps a static figure in the
executed notebook. ipywidgets is imported only when a widget is built, so the drawing works without it.

Each paper's explorer is ``repronets.<paper>.explore.explorer(runs)``.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any, Callable, Sequence

# (label shown in the control, value handed to the drawing function)
Option = tuple[str, Any]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CSS_CLASS = "repronets-explorer"  # on the explorer's box in the page (the browser tests find it by this)


@dataclasses.dataclass
class Control:
    """One control: ``options(selection)`` lists the choices given the values of the controls before it.
    ``slider`` makes it a selection slider (ordered numbers: λ, step counts) instead of a drop-down."""

    name: str
    options: Callable[[dict], Sequence[Option]]
    slider: bool = False


class Explorer:
    def __init__(self, title: str, controls: Sequence[Control], draw: Callable[..., Any], initial: dict | None = None):
        if not controls:
            raise ValueError(f"explorer {title!r}: no controls")
        self.title = title
        self.controls = list(controls)
        self.draw = draw  # draw(**selection) -> matplotlib figure
        self.selection = self.resolve(initial or {})
        self._widgets: dict = {}
        self._output = None

    def resolve(self, wanted: dict) -> dict:
        """The selection nearest to ``wanted``: each control keeps its wanted value when one of its options (given
        the controls before it) has it, and otherwise takes its first option. Raises when a control has none."""
        selection: dict = {}
        for c in self.controls:
            values = [v for _, v in c.options(dict(selection))]
            if not values:
                raise ValueError(f"explorer {self.title!r}: no runs offer a choice for {c.name!r} given {selection}")
            selection[c.name] = wanted[c.name] if c.name in wanted and wanted[c.name] in values else values[0]
        return selection

    def figure(self, **wanted):
        return self.draw(**self.resolve(wanted))

    def png(self, **wanted) -> bytes:
        """The view of a selection as PNG bytes (the figure is closed: no second copy reaches the notebook)."""
        from .plotting import plt

        fig = self.figure(**wanted)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    def select(self, **changes) -> dict:
        """Change controls (as a user would) and redraw; returns the resulting selection."""
        self.selection = self.resolve({**self.selection, **changes})
        if self._widgets:
            self._sync_widgets()
            self._redraw()
        return self.selection

    # ipywidgets side -------------------------------------------------------------------------------------------

    def widget(self):
        """The controls above the view, as an ipywidgets ``VBox``."""
        import ipywidgets as widgets

        if self._widgets:
            return self._box
        for c in self.controls:
            cls = widgets.SelectionSlider if c.slider else widgets.Dropdown
            w = cls(description=c.name, options=list(c.options(self._before(c))), value=self.selection[c.name])
            w.style.description_width = "initial"
            w.observe(lambda change, name=c.name: self._on_change(name, change), names="value")
            self._widgets[c.name] = w
        self._output = widgets.Output()
        self._box = widgets.VBox(
            [widgets.HTML(f"<b>{self.title}</b>"), widgets.HBox(list(self._widgets.values())), self._output]
        )
        self._box.add_class(CSS_CLASS)
        self._redraw()
        return self._box

    def show(self) -> None:
        """Display the explorer: live in JupyterLab, a static PNG of the current selection elsewhere."""
        from IPython.display import display

        bundle = dict(self.widget()._repr_mimebundle_())
        bundle["image/png"] = base64.b64encode(self._png).decode()
        bundle["text/plain"] = f"{self.title}: {self.selection}"
        display(bundle, raw=True)

    def _before(self, control: Control) -> dict:
        i = self.controls.index(control)
        return {c.name: self.selection[c.name] for c in self.controls[:i]}

    def _on_change(self, name: str, change) -> None:
        if self._syncing or change["new"] == self.selection.get(name):
            return
        self.select(**{name: change["new"]})

    _syncing = False

    def _sync_widgets(self) -> None:
        """Offer each control the options its predecessors now allow, without firing redraws on the way."""
        self._syncing = True
        try:
            for c in self.controls:
                w = self._widgets[c.name]
                options = list(c.options(self._before(c)))
                if list(w.options) != options:
                    w.options = options
                w.value = self.selection[c.name]
        finally:
            self._syncing = False

    def _redraw(self) -> None:
        self._png = self.png(**self.selection)
        self._output.outputs = (
            {
                "output_type": "display_data",
                "data": {"image/png": base64.b64encode(self._png).decode(), "text/plain": str(self.selection)},
                "metadata": {},
            },
        )


def distinct(values, key=None) -> list:
    """Distinct values in sorted order (the options of a control)."""
    return sorted(set(values), key=key)
