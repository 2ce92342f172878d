"""The Training tab: dataset, devices, hyper parameters, augmentations with preview, train, live plots.

The form is built from the module's config class; training is the module's ``train_job``; the plot and the
status bar only follow the job's events. "Train" asks at the end whether to keep the model, "Train and save"
keeps it at once. Read-only, the train buttons are left out of the view: the form only shows the settings.
"""

from __future__ import annotations

import html
import time

import ipywidgets as widgets

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.evaluation import render
from astrocyte_lab.modules.registry import architecture_names, entry
from astrocyte_lab.widgets.forms import ConfigForm
from astrocyte_lab.widgets.live_plot import LivePlot
from astrocyte_lab.widgets.messages import ask, error_html, run_guarded
from astrocyte_lab.widgets.state import AppState, editing

BASIC = ["architecture", "epochs", "batch_size", "learning_rate", "region_size", "pretrained"]


class TrainingPanel:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.job = None
        config_class = entry(state.module).load("config")
        fields = [n for n in BASIC if n in config_class.model_fields]
        simple = ConfigForm(config_class).inputs  # every field the generic form can show
        advanced = [n for n in simple if n not in fields and n not in ("device", "resume_from")]
        choices = {"architecture": architecture_names(state.module)} if architecture_names(state.module) else {}
        self.form = ConfigForm(config_class, fields=fields, advanced=advanced, choices=choices)
        self.config_class = config_class
        self.dataset = widgets.Dropdown(description="dataset", options=[], layout=widgets.Layout(width="320px"))
        self.model_name = widgets.Text(description="model name", placeholder="name of the trained model")
        self.device = widgets.Dropdown(description="device", options=["auto"], layout=widgets.Layout(width="320px"))
        self.devices = widgets.HTML("")
        self.augment_inputs: dict[str, tuple[widgets.Checkbox, widgets.FloatSlider]] = {}
        self.augment_form: ConfigForm | None = None
        augment_rows: list[widgets.Widget] = []
        defaults = getattr(config_class(), "augmentation", None)
        if hasattr(defaults, "transforms"):  # the shared transform list: a switch and a chance per transform
            for name, transform in defaults.transforms().items():
                enabled = widgets.Checkbox(value=transform.enabled, description=name.replace("_", " "),
                                           indent=False, layout=widgets.Layout(width="160px"))
                chance = widgets.FloatSlider(value=transform.probability, min=0, max=1, step=0.05,
                                             description="probability", layout=widgets.Layout(width="300px"))
                self.augment_inputs[name] = (enabled, chance)
                augment_rows.append(widgets.HBox([enabled, chance]))
        elif defaults is not None:  # a module's own augmentation settings: a generic form
            self.augment_form = ConfigForm(type(defaults))
            augment_rows.append(self.augment_form.widget)
        else:
            augment_rows.append(widgets.HTML("<i>This module trains without augmentation.</i>"))
        preview = widgets.Button(description="Preview augmentations", icon="eye")
        preview.on_click(lambda _: self._guard(self.preview_augmentations))
        self.previews = widgets.HBox([])
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.train_save_button = widgets.Button(description="Train and save", button_style="success", icon="save")
        self.cancel_button = widgets.Button(description="Cancel", button_style="danger", icon="stop", disabled=True)
        for button, name in ((self.train_button, "train"), (self.train_save_button, "train-save"),
                             (self.cancel_button, "cancel")):
            button.add_class(f"astro-{name}")  # stable handles for browser tests and custom styling
        self.train_button.on_click(lambda _: self._guard(lambda: self.train(keep=None)))
        self.train_save_button.on_click(lambda _: self._guard(lambda: self.train(keep=True)))
        self.cancel_button.on_click(lambda _: self.cancel())
        self.mode = widgets.ToggleButtons(options=["Manual train", "Auto train"], value="Manual train",
                                          style={"button_width": "110px"})
        self.intensity = widgets.Dropdown(options=[("Low (20 trials)", "low"), ("Medium (40)", "medium"),
                                                   ("High (60)", "high"), ("Custom", "custom")], value="low",
                                          description="tuning", layout=widgets.Layout(width="240px"))
        self.trials = widgets.BoundedIntText(value=5, min=1, max=1000, description="trials",
                                             layout=widgets.Layout(width="160px"))
        self.auto_devices = widgets.SelectMultiple(options=[], description="devices", rows=2,
                                                   layout=widgets.Layout(width="260px"),
                                                   tooltip="auto train runs one trial per selected device")
        self.auto_box = widgets.HBox([self.intensity, self.trials, self.auto_devices],
                                     layout=widgets.Layout(display="none"))
        self.mode.observe(lambda change: setattr(self.auto_box.layout, "display",
                                                 "flex" if change["new"] == "Auto train" else "none"), "value")
        self.trial_plot = None
        self.plot = LivePlot(title="Training", metrics=None)
        self.status_bar = widgets.HTML("")
        self.message = widgets.HTML("")
        self.keep_box = widgets.HBox([])
        settings = widgets.Tab([self.form.widget, widgets.VBox([*augment_rows, preview, self.previews])],
                               titles=("Hyper parameters", "Augmentations"))
        edit = not state.read_only  # read-only: what only serves to start a training is left out of the view
        self.widget = widgets.VBox([
            widgets.HBox([self.dataset, *([self.model_name] if edit else []), self.device]), self.devices,
            *([widgets.HBox([self.mode]), self.auto_box] if edit else []), settings,
            *([widgets.HBox([self.train_button, self.train_save_button, self.cancel_button])] if edit else []),
            self.status_bar, self.plot.widget, self.keep_box, self.message])
        state.observe(lambda _: self.refresh(), "revision")
        state.observe(lambda change: self._follow_dataset(change["new"]), "dataset_name")
        self.refresh()

    def refresh(self) -> None:
        from astrocyte_lab.training.devices import list_devices

        names = self.state.dataset_names()
        self.dataset.options = names
        if self.state.dataset_name in names:
            self.dataset.value = self.state.dataset_name
        devices = list_devices()
        self.device.options = ["auto", *[d.id for d in devices]]
        self.auto_devices.options = [d.id for d in devices]
        if not self.auto_devices.value and devices:
            self.auto_devices.value = (devices[0].id,)
        rows = "".join(f"<tr><td>{html.escape(d.id)}</td><td>{html.escape(d.name)}</td><td>{_memory(d)}</td></tr>"
                       for d in devices)
        self.devices.value = (f"<table class='astro-table'><tr><th>device</th><th>name</th><th>free / total memory"
                              f"</th></tr>{rows}</table>")

    def _follow_dataset(self, name: str | None) -> None:
        if name in self.dataset.options:
            self.dataset.value = name

    def augmentation(self):
        """The augmentation settings of the form (on top of the module's defaults); None: module defaults."""
        if self.augment_form is not None:
            settings = self.augment_form.config()
            if settings is None:
                raise AstrocyteError("fix the augmentation settings marked below their form")
            return settings
        if not self.augment_inputs:
            return None
        augmentation = self.config_class().augmentation.model_copy(deep=True)
        for name, (enabled, chance) in self.augment_inputs.items():
            transform = getattr(augmentation, name)
            transform.enabled = enabled.value
            transform.probability = chance.value
        return augmentation

    def config(self):
        extra = {"device": self.device.value} if "device" in self.config_class.model_fields else {}
        augmentation = self.augmentation()
        if augmentation is not None:
            extra["augmentation"] = augmentation
        config = self.form.config(**extra)
        if config is None:
            raise AstrocyteError("fix the hyper parameters marked below the form")
        return config

    def preview_augmentations(self) -> None:
        from astrocyte_lab.training.augment import AugmentationConfig, preview

        if not isinstance(self.augmentation(), AugmentationConfig):
            raise AstrocyteError("this module's augmentations are applied by its trainer; no preview here")
        dataset = self.state.dataset(self.dataset.value)
        if dataset is None or len(dataset) == 0:
            raise AstrocyteError("choose a dataset with images first")
        image = dataset.image(int(dataset.ids[0]))
        shots = preview(image, self.augmentation(), count=6)
        self.previews.children = [widgets.Image(value=render.png_bytes(render.thumbnail(s, 120)), format="png")
                                  for s in shots]

    @editing("train a model")
    def train(self, keep: bool | None = True):
        """Start training the chosen dataset into the model name; returns the job."""
        if self.job is not None and self.job.running:
            raise AstrocyteError("a training is already running: cancel it first")
        name, dataset = self.model_name.value.strip(), self.dataset.value
        if not name or not dataset:
            raise AstrocyteError("choose a dataset and type a model name")
        open_dataset = self.state.dataset(dataset)
        if open_dataset is not None and open_dataset.dirty:
            raise AstrocyteError(f"save the changes of {dataset} first: training reads the saved dataset")
        if self.state.workspace.model_store.exists(name):
            raise AstrocyteError(f"a model called {name!r} exists: choose another name or delete it")
        config = self.config()
        if self.mode.value == "Auto train":
            from astrocyte_lab.training.auto import auto_train
            from astrocyte_lab.widgets.trial_plot import TrialPlot

            intensity = self.trials.value if self.intensity.value == "custom" else self.intensity.value
            self.job = auto_train(self.state.workspace, dataset, name, config, intensity=intensity,
                                  devices=list(self.auto_devices.value) or None)
            if self.trial_plot is None:
                self.trial_plot = TrialPlot()
                self.widget.children = [*self.widget.children[:-3], self.trial_plot.widget,
                                        *self.widget.children[-3:]]
            self.trial_plot.attach(self.job)
        else:
            self.job = entry(self.state.module).load("train_job")(self.state.workspace, dataset, name, config)
        self.plot.attach(self.job)
        self.job.subscribe(lambda event: self._on_event(event, name, keep))
        self.cancel_button.disabled = False
        self.message.value = f"training {html.escape(name)} on {html.escape(dataset)} ..."
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _on_event(self, event, name: str, keep: bool | None) -> None:
        if event.kind in ("batch", "epoch", "status"):
            self.status_bar.value = _status_text(self.job.status())
            return
        if event.kind not in ("done", "error", "cancelled"):
            return
        self.status_bar.value = _status_text(self.job.status())
        self.cancel_button.disabled = True
        if event.kind != "done":
            self.message.value = error_html(f"training {event.kind}: {event.message}")
            return
        self.state.changed()
        if keep:
            self.message.value = f"model <b>{html.escape(name)}</b> saved"
            return
        def answer(kept: bool) -> None:
            if not kept:
                self.state.workspace.delete_model(name)
                self.state.changed()
            self.message.value = f"model {html.escape(name)} {'kept' if kept else 'discarded'}"

        ask(self.keep_box, f"Training finished. Keep <b>{html.escape(name)}</b>? ",
            [("Keep model", "success", lambda: answer(True)), ("Discard", "danger", lambda: answer(False))])

    def _guard(self, action) -> None:
        run_guarded(action, self.message)


def _memory(device) -> str:
    if device.total_memory is None:
        return ""
    return f"{device.free_memory / 2**30:.1f} / {device.total_memory / 2**30:.1f} GiB"


def _status_text(status) -> str:
    """Step, elapsed, remaining and ETA, as the status bar shows them."""
    total = f"/{status.total}" if status.total else ""
    parts = [f"<b>{status.state}</b>", f"step {status.step}{total}", f"elapsed {_duration(status.elapsed)}"]
    if status.remaining is not None:
        parts.append(f"remaining {_duration(status.remaining)}")
    if status.eta is not None:
        parts.append(f"ETA {time.strftime('%H:%M:%S', time.localtime(status.eta))}")
    return " | ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
