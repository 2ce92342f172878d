"""The Trained models tab: the table of models, a details view, import, export (package or model file), delete.

Models that cannot be read are listed apart with the reason; read-only, import and delete are left out of the view.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import ipywidgets as widgets

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.registry import entry
from astrocyte_lab.widgets.messages import ask, broken_html, run_guarded
from astrocyte_lab.widgets.state import AppState, editing


class ModelsPanel:
    def __init__(self, state: AppState) -> None:
        self.state = state
        edit = not state.read_only
        self.table = widgets.HTML("")
        self.models = widgets.Select(options=[], rows=8, layout=widgets.Layout(width="320px"))
        self.models.observe(lambda change: self.show_details(change["new"]), "value")
        self.details = widgets.HTML("")
        self.broken = widgets.HTML("")
        self.path = widgets.Text(placeholder=".astromodel package, or .astrotrained model file",
                                 layout=widgets.Layout(width="420px"))
        self.message = widgets.HTML("")
        self.confirm = widgets.HBox([])
        buttons = []
        for label, icon, action, allowed in (
                ("Export package", "download", self.export_package, True),
                ("Export model", "download", self.export_model, True),
                ("Import model", "upload", self.import_model, edit), ("Delete", "trash", self.delete, edit)):
            if not allowed:
                continue  # read-only: left out of the view
            button = widgets.Button(description=label, icon=icon)
            button.on_click(lambda _, act=action: self._guard(act))
            buttons.append(button)
        self.buttons = {button.description: button for button in buttons}
        self.widget = widgets.VBox([self.table, self.broken, widgets.HBox([self.models, self.details]), self.path,
                                    widgets.HBox(buttons), self.confirm, self.message])
        state.observe(lambda _: self.refresh(), "revision")
        self.refresh()

    def refresh(self) -> None:
        infos = [i for i in self.state.workspace.models() if i.module == self.state.module]
        self.models.options = [i.name for i in infos]
        rows = "".join(
            f"<tr><td>{html.escape(i.name)}</td><td>{html.escape(i.architecture)}</td>"
            f"<td>{i.width}x{i.height}x{i.channels}</td><td>{html.escape(', '.join(i.categories))}</td>"
            f"<td>{html.escape(i.created[:19])}</td><td>{i.duration_s:.0f} s</td>"
            f"<td>{html.escape(_metrics(i.performance))}</td></tr>" for i in infos)
        self.table.value = ("<table class='astro-table'><tr><th>model</th><th>architecture</th><th>input</th>"
                            "<th>categories</th><th>created</th><th>training</th><th>metrics</th></tr>"
                            f"{rows}</table>" if infos else "<i>No trained model yet.</i>")
        self.broken.value = broken_html(self.state.broken("model"), "models")

    def show_details(self, name: str | None) -> None:
        if not name:
            self.details.value = ""
            return
        self.state.model_name = name
        record = self.state.workspace.model_store.record(name)
        shown = {k: v for k, v in record.items() if k not in ("tensors",)}
        self.details.value = (f"<b>{html.escape(name)}</b><pre style='max-height:320px;overflow:auto'>"
                              f"{html.escape(json.dumps(shown, indent=1, default=str))}</pre>")

    def _chosen(self) -> str:
        if not self.models.value:
            raise AstrocyteError("choose a model in the list first")
        return self.models.value

    def _path(self) -> Path:
        if not self.path.value.strip():
            raise AstrocyteError("type a file path in the path box first")
        return Path(self.path.value.strip()).expanduser()

    def export_package(self) -> None:
        """The deployable .astromodel package (runs without PyTorch)."""
        name = self._chosen()
        path = self.state.target(self._path(), "export a model package")
        target = entry(self.state.module).load("export")(self.state.workspace, name, path)
        self.message.value = f"package written to {html.escape(str(target))}"

    def export_model(self) -> None:
        """The trained model itself (.astrotrained), to import in another workspace."""
        path = self.state.target(self._path(), "export a model")
        target = self.state.workspace.export_model(self._chosen(), path)
        self.message.value = f"model written to {html.escape(str(target))}"

    @editing("import a model")
    def import_model(self) -> None:
        name = self.state.workspace.import_model(self._path())
        self.state.changed()
        self.message.value = f"imported {html.escape(name)}"

    @editing("delete a model")
    def delete(self) -> None:
        name = self._chosen()
        def delete_it() -> None:
            self.state.workspace.delete_model(name)
            self.state.changed()
            self.message.value = f"deleted {html.escape(name)}"

        ask(self.confirm, f"Delete model <b>{html.escape(name)}</b>? ",
            [(f"Delete {name}", "danger", delete_it), ("Keep", "", lambda: None)])

    def _guard(self, action) -> None:
        run_guarded(action, self.message)


def _metrics(performance: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in list(performance.items())[:4])
