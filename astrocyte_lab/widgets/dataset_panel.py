"""The Dataset tab: datasets, the filtered image list, labels and sets, categories, annotation, testing.

A thin view: the list is an :class:`~astrocyte_lab.data.query.ImageQuery`, edits are Dataset methods, tests
are the module's evaluate function; the panel only wires inputs to them and redraws. Read-only, the editing
controls are left out of the view (not greyed) and a test keeps its predictions in its report only.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from astrocyte_lab.data.query import ImageQuery
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.evaluation import render
from astrocyte_lab.widgets.dataset_form import DatasetForm
from astrocyte_lab.widgets.messages import ask, broken_html, run_guarded
from astrocyte_lab.widgets.results import ConfusionMatrixView, RocView, metrics_table
from astrocyte_lab.widgets.state import AppState, editing

ANY = "(any)"
SETS = ("train", "validation", "test", "auto")
COLUMNS = ("name", "ground_truth", "prediction", "score", "set", "assigned", "n_ground_truth", "n_prediction")


class DatasetPanel:
    """Everything about the chosen dataset. ``panel.widget`` is the view."""

    def __init__(self, state: AppState, page_size: int = 50) -> None:
        self.state = state
        self.page_size = page_size
        self.query: ImageQuery | None = None
        self.page_index = 0
        self.report = None
        self.canvas = None
        edit = not state.read_only
        small = widgets.Layout(width="auto")

        # datasets ------------------------------------------------------------------------------------
        self.datasets = widgets.Select(options=[], rows=6, layout=widgets.Layout(width="340px"))
        self.datasets.observe(self._on_pick_dataset, "value")
        self.info = widgets.HTML("")
        self.broken = widgets.HTML("")
        buttons = {}
        for label, icon, action, allowed in (
                ("New", "plus", self.show_form, edit), ("Save changes", "save", self.save, edit),
                ("Reload", "refresh", self.reload, True), ("Shuffle", "random", self.shuffle, edit),
                ("Export", "download", self.export, True), ("Import", "upload", self.import_, edit),
                ("Merge into", "compress", self.merge, edit), ("Delete", "trash", self.delete, edit)):
            if not allowed:
                continue  # read-only: left out of the view
            button = widgets.Button(description=label, icon=icon, layout=small)
            button.on_click(lambda _, act=action: self._guard(act))
            buttons[label] = button
        self.buttons = buttons
        self.path = widgets.Text(placeholder="file for export / import (.astrods), or CSV",
                                 layout=widgets.Layout(width="340px"))
        self.merge_source = widgets.Dropdown(options=[], description="merge from", layout=widgets.Layout(width="260px"))
        self.message = widgets.HTML("")
        self.confirm = widgets.HBox([])
        self.form_box = widgets.VBox([])

        # image list ------------------------------------------------------------------------------------
        self.name_filter = widgets.Text(placeholder="name contains", layout=widgets.Layout(width="160px"))
        box, label = widgets.Layout(width="230px"), {"description_width": "85px"}
        self.gt_filter = widgets.Dropdown(options=[ANY], description="ground truth", layout=box, style=label)
        self.pred_filter = widgets.Dropdown(options=[ANY], description="prediction", layout=box, style=label)
        self.set_filter = widgets.Dropdown(options=[ANY, *SETS], description="set", layout=box, style=label)
        self.pseudo_filter = widgets.ToggleButtons(options=[("no pseudo", "exclude"), ("all", "all"),
                                                            ("pseudo only", "only")], value="all",
                                                   tooltips=["hide images with pseudo labels", "every image",
                                                             "only images with pseudo labels"],
                                                   style={"button_width": "95px"})
        self.overlap_filter = widgets.Checkbox(description="overlapping annotations", indent=False)
        for box in (self.name_filter, self.gt_filter, self.pred_filter, self.set_filter, self.pseudo_filter,
                    self.overlap_filter):
            box.observe(self._on_filter, "value")
        self.count = widgets.HTML("")
        self.view_mode = widgets.ToggleButtons(options=["list", "thumbnails"], value="list",
                                               style={"button_width": "90px"})
        self.view_mode.observe(lambda _: self.show_page(), "value")
        self.images = widgets.SelectMultiple(options=[], rows=14, layout=widgets.Layout(width="100%"))
        self.images.add_class("astro-list")
        self.images.observe(self._on_pick_images, "value")
        self.thumbs = widgets.GridBox([], layout=widgets.Layout(grid_template_columns="repeat(6, 110px)"))
        self.prev_page = widgets.Button(icon="chevron-left", layout=widgets.Layout(width="36px"))
        self.next_page = widgets.Button(icon="chevron-right", layout=widgets.Layout(width="36px"))
        self.prev_page.on_click(lambda _: self.show_page(self.page_index - 1))
        self.next_page.on_click(lambda _: self.show_page(self.page_index + 1))
        self.page_label = widgets.Label("")
        self.list_box = widgets.VBox([self.images])

        # edits of the selected images --------------------------------------------------------------------
        self.assign_to = widgets.Dropdown(options=list(SETS), layout=widgets.Layout(width="110px"))
        assign = widgets.Button(description="Assign set", layout=small)
        assign.on_click(lambda _: self._guard(self.assign_selected))
        self.relabel_to = widgets.Dropdown(options=[], layout=widgets.Layout(width="140px"))
        relabel = widgets.Button(description="Set ground truth", layout=small)
        relabel.on_click(lambda _: self._guard(self.relabel_selected))
        remove = widgets.Button(description="Remove images", icon="trash", layout=small)
        remove.on_click(lambda _: self._guard(self.remove_selected))
        csv = widgets.Button(description="Save CSV", icon="file", layout=small)
        csv.on_click(lambda _: self._guard(self.save_csv))
        edits = [self.assign_to, assign, self.relabel_to, relabel, remove] if edit else []

        # categories ----------------------------------------------------------------------------------------
        self.category_name = widgets.Text(placeholder="category", layout=widgets.Layout(width="140px"))
        self.category_pick = widgets.Dropdown(options=[], layout=widgets.Layout(width="140px"))
        self.migrate_to = widgets.Dropdown(options=[], description="migrate to", layout=widgets.Layout(width="220px"))
        category_buttons = []
        for label, action in (("Add", self.add_category), ("Rename", self.rename_category),
                              ("Delete", self.delete_category)):
            button = widgets.Button(description=label, layout=small)
            button.on_click(lambda _, act=action: self._guard(act))
            category_buttons.append(button)
        categories = [widgets.HBox([widgets.Label("Categories:"), self.category_name, self.category_pick,
                                    *category_buttons, self.migrate_to])] if edit else []

        # testing -----------------------------------------------------------------------------------------------
        self.test_model = widgets.Dropdown(options=[], description="model", layout=widgets.Layout(width="300px"))
        self.test_subset = widgets.Dropdown(options=["validation", "train", "all"], value="validation",
                                            description="images", layout=widgets.Layout(width="220px"))
        test = widgets.Button(description="Test model", icon="check-square", button_style="info", layout=small)
        test.on_click(lambda _: self._guard(self.run_test))
        test.add_class("astro-test")
        self.results = widgets.VBox([])
        self.preview = widgets.VBox([])

        list_tab = widgets.VBox([
            widgets.HBox([self.name_filter, self.gt_filter, self.pred_filter, self.set_filter]),
            widgets.HBox([self.pseudo_filter, self.overlap_filter]),
            widgets.HBox([self.count, self.view_mode, self.prev_page, self.page_label, self.next_page]),
            self.list_box,
            widgets.HBox([*edits, csv]),
            *categories,
        ])
        shown = list(buttons.values())
        self.widget = widgets.VBox([
            widgets.HBox([widgets.VBox([self.datasets, self.info, self.broken]),
                          widgets.VBox([widgets.HBox(shown[:4]), widgets.HBox(shown[4:]),
                                        widgets.HBox([self.path, *([self.merge_source] if edit else [])]),
                                        self.message, self.confirm])]),
            self.form_box,
            widgets.HBox([widgets.VBox([list_tab], layout=widgets.Layout(width="58%")),
                          widgets.VBox([self.preview], layout=widgets.Layout(width="42%"))]),
            widgets.HBox([self.test_model, self.test_subset, test]),
            self.results,
        ])
        state.observe(lambda _: self.refresh_lists(), "revision")
        self.refresh_lists()

    # -- datasets --------------------------------------------------------------------------------------------------
    @property
    def dataset(self):
        return self.state.dataset()

    def refresh_lists(self) -> None:
        names = self.state.dataset_names()
        current = self.state.dataset_name if self.state.dataset_name in names else (names[0] if names else None)
        self.datasets.options = names
        self.merge_source.options = [n for n in names if n != current]
        self.test_model.options = self.state.model_names()
        self.broken.value = broken_html(self.state.broken("dataset"), "datasets")
        if current != self.state.dataset_name or self.query is None:
            self.open(current)
        else:
            self.datasets.value = current

    def open(self, name: str | None) -> None:
        """Show dataset ``name`` (asks first when the current one has unsaved changes)."""
        current = self.dataset
        if current is not None and current.dirty and name != current.name:
            self._ask_unsaved(name)
            return
        self.state.dataset_name = name
        if name is not None and self.datasets.value != name:
            self.datasets.value = name
        dataset = self.dataset
        self.query = ImageQuery(dataset, self.page_size) if dataset is not None else None
        self.report = None
        self.results.children = []
        self._sync_categories()
        self._show_info()
        self.show_page(0)

    def _on_pick_dataset(self, change) -> None:
        if change["new"] and change["new"] != self.state.dataset_name:
            self.open(change["new"])

    def _ask_unsaved(self, target: str | None) -> None:
        dataset = self.dataset

        def switch(keep: Callable[[], object]) -> None:
            keep()
            self.open(target)

        save = [] if self.state.read_only else [("Save", "primary", lambda: switch(dataset.save))]
        ask(self.confirm, f"<b>{html.escape(dataset.name)}</b> has unsaved changes. ", [
            *save, ("Discard", "danger", lambda: switch(dataset.reload)),
            ("Cancel", "", lambda: setattr(self.datasets, "value", dataset.name))])

    def _show_info(self) -> None:
        dataset = self.dataset
        if dataset is None:
            self.info.value = "<i>No dataset yet: click New.</i>"
            return
        g = dataset.geometry
        mark = " <b style='color:#e65100'>(unsaved changes)</b>" if dataset.dirty else ""
        self.info.value = (f"<b>{html.escape(dataset.name)}</b>{mark}<br>{len(dataset)} images, "
                           f"{g.width}x{g.height}x{g.channels}<br>categories: "
                           f"{html.escape(', '.join(dataset.categories) or '-')}")

    @editing("create a dataset")
    def show_form(self) -> None:
        self.form = DatasetForm(self.state.workspace, self.state.module, self._form_done)
        self.form_box.children = [self.form.widget]

    def _form_done(self, name: str | None) -> None:
        self.form_box.children = []
        if name:
            self.state.changed()
            self.open(name)

    @editing("save the dataset")
    def save(self) -> None:
        self.dataset.save()
        self._say(f"saved {self.dataset.name}")
        self._show_info()

    def reload(self) -> None:
        self.dataset.reload()
        self._after_edit(f"reloaded {self.dataset.name}")
        self._refresh_canvas()

    def _refresh_canvas(self) -> None:
        """The canvas re-reads the dataset after changes made outside it (reload, test, categories, removal)."""
        if self.canvas is not None and self.canvas.dataset is self.dataset and len(self.dataset):
            self.canvas.refresh()

    @editing("shuffle the dataset")
    def shuffle(self) -> None:
        self.dataset.shuffle()
        self._after_edit("auto images shuffled between train and validation (not saved yet)")

    def export(self) -> None:
        target = self.state.target(self._path(".astrods"), "export a dataset")
        self.state.workspace.export_dataset(self.dataset.name, target)
        self._say(f"exported to {target}")

    @editing("import a dataset")
    def import_(self) -> None:
        dataset = self.state.workspace.import_dataset(self._path(".astrods"))
        self.state.changed()
        self.open(dataset.name)

    @editing("merge datasets")
    def merge(self) -> None:
        source = self.merge_source.value
        if not source:
            raise AstrocyteError("pick a dataset to merge from")
        if self.dataset.dirty:
            raise AstrocyteError("save or reload the changes before merging")
        self.state.forget(self.dataset.name)
        self.state.workspace.merge_datasets(self.dataset.name, [source])
        self.open(self.state.dataset_name)
        self._say(f"merged {source} into {self.dataset.name}")

    @editing("delete a dataset")
    def delete(self) -> None:
        name = self.dataset.name

        def delete_it() -> None:
            self.state.workspace.delete_dataset(name)
            self.state.forget(name)
            self.state.dataset_name = None
            self.query = None
            self.state.changed()

        ask(self.confirm, f"Delete dataset <b>{html.escape(name)}</b> for good? ",
            [(f"Delete {name}", "danger", delete_it), ("Keep", "", lambda: None)])

    # -- image list ------------------------------------------------------------------------------------------------
    def _on_filter(self, _change=None) -> None:
        if self.query is None:
            return
        self.query.set_filter(name_contains=self.name_filter.value,
                              ground_truth=None if self.gt_filter.value == ANY else self.gt_filter.value,
                              prediction=None if self.pred_filter.value == ANY else self.pred_filter.value,
                              set=None if self.set_filter.value == ANY else self.set_filter.value,
                              pseudo=self.pseudo_filter.value, overlapping=self.overlap_filter.value, ids=None)
        self.show_page(0)

    def drill_down(self, truth: str, predicted: str) -> None:
        """Show only the images of one confusion-matrix cell. Read-only, the test's predictions live in its
        report, not in the dataset, so the cell's images are picked from the report."""
        stored = not self.state.read_only
        self.gt_filter.unobserve(self._on_filter, "value")
        self.pred_filter.unobserve(self._on_filter, "value")
        try:
            self.gt_filter.value = truth if truth in self.gt_filter.options else ANY
            self.pred_filter.value = predicted if stored and predicted in self.pred_filter.options else ANY
        finally:
            self.gt_filter.observe(self._on_filter, "value")
            self.pred_filter.observe(self._on_filter, "value")
        self._on_filter()
        if not stored and self.query is not None:
            self.query.set_filter(ids=self._cell_ids(truth, predicted))
            self.show_page(0)
        self._say(f"images with ground truth {truth} predicted as {predicted}")

    def _cell_ids(self, truth: str, predicted: str) -> list[int]:
        """Images of the last test whose ground truth is ``truth`` and prediction ``predicted``."""
        rows = getattr(self.report, "predictions", None)
        if rows is None or "prediction" not in rows:
            return []
        chosen = (rows["ground_truth"] == truth) & (rows["prediction"] == predicted)
        return [int(i) for i in rows.index[chosen]]

    def show_page(self, index: int | None = None) -> None:
        if self.query is None:
            self.images.options, self.count.value, self.page_label.value = [], "", ""
            return
        if index is not None:
            self.page_index = min(max(0, index), self.query.pages - 1)
        rows = self.query.page(self.page_index)
        self.count.value = f"<b>{self.query.summary()}</b>"
        self.page_label.value = f"page {self.page_index + 1}/{self.query.pages}"
        if self.view_mode.value == "list":
            self.images.options = [(_row_text(image_id, row), int(image_id)) for image_id, row in rows.iterrows()]
            self.list_box.children = [self.images]
        else:
            self.thumbs.children = [self._thumbnail(int(i), row) for i, row in rows.iterrows()]
            self.list_box.children = [self.thumbs]

    def _thumbnail(self, image_id: int, row) -> widgets.Widget:
        picture = render.thumbnail(self.dataset.image(image_id), 100)
        button = widgets.Button(description=str(row["name"])[:14], layout=widgets.Layout(width="104px"),
                                tooltip=f"{row['name']} | {row['ground_truth']}")
        button.on_click(lambda _: self.select_image(image_id))
        return widgets.VBox([widgets.Image(value=render.png_bytes(picture), format="png"), button])

    def select_image(self, image_id: int) -> None:
        if image_id in [v for _, v in self.images.options]:
            self.images.value = (image_id,)
        else:
            self._show_image(image_id)

    def _on_pick_images(self, change) -> None:
        if change["new"]:
            self._show_image(int(change["new"][-1]))

    def _show_image(self, image_id: int) -> None:
        dataset = self.dataset
        canvas_class = _canvas_class()
        if canvas_class is not None and dataset.module in ("detection", "segmentation", "anomaly"):
            ids = [int(i) for i in self.query.ids] if self.query is not None and self.query.count else None
            if self.canvas is None or self.canvas.dataset is not dataset:
                self.canvas = canvas_class(dataset, image_id=image_id, module=dataset.module, width=620, height=460,
                                           image_ids=ids, read_only=self.state.read_only)
                self.canvas.on_change.append(lambda _change: self._after_edit(None))
                self.canvas.add_class("astro-annotation-canvas")
            else:
                self.canvas.image_ids = ids
                self.canvas.show_image(image_id)
            self.preview.children = [self.canvas]
            return
        self.preview.children = [widgets.Image(value=render.png_bytes(self.picture(image_id)), format="png",
                                               layout=widgets.Layout(max_width="100%")),
                                 widgets.HTML(html.escape(str(dataset.table.loc[image_id, "name"])))]

    def picture(self, image_id: int) -> np.ndarray:
        """The image with its annotations, predictions and masks drawn (what the preview shows)."""
        dataset = self.dataset
        rgb = render.display_rgb(dataset.image(image_id))
        colours = render.category_colours(dataset.categories)
        rgb = render.draw_objects(rgb, dataset.objects(image_id), colours)
        rgb = render.draw_objects(rgb, dataset.predicted_objects(image_id), colours, predicted=True)
        predicted, truth = dataset.predicted_mask(image_id), dataset.mask(image_id)
        if predicted is not None or truth is not None:
            background = dataset.categories.index("background") if "background" in dataset.categories else 0
            rgb = render.overlay_mask(rgb, predicted, truth, dataset.categories or ["normal", "anomaly"], background)
        return rgb

    def selected(self) -> list[int]:
        chosen = list(self.images.value)
        if not chosen:
            raise AstrocyteError("select images in the list first")
        return chosen

    @editing("assign images to a set")
    def assign_selected(self) -> None:
        ids = self.selected()
        self.dataset.assign_set(ids, self.assign_to.value)
        self._after_edit(f"{len(ids)} images assigned to {self.assign_to.value}")

    @editing("change ground truth")
    def relabel_selected(self) -> None:
        ids = self.selected()
        self.dataset.relabel(ids, self.relabel_to.value)
        self._after_edit(f"{len(ids)} images labelled {self.relabel_to.value}")

    @editing("remove images")
    def remove_selected(self) -> None:
        ids = self.selected()
        self.dataset.remove(ids)
        self._after_edit(f"{len(ids)} images removed (save changes to keep this)")
        self._refresh_canvas()

    def save_csv(self) -> None:
        target = self.state.target(self._path(".csv"), "write a CSV table")
        self.dataset.to_csv(target)
        self._say(f"table written to {target}")

    # -- categories -----------------------------------------------------------------------------------------------
    @editing("add a category")
    def add_category(self) -> None:
        self.dataset.add_category(self.category_name.value.strip())
        self._after_edit(f"category {self.category_name.value.strip()} added")
        self._refresh_canvas()

    @editing("rename a category")
    def rename_category(self) -> None:
        self.dataset.rename_category(self.category_pick.value, self.category_name.value.strip())
        self._after_edit("category renamed")
        self._refresh_canvas()

    @editing("delete a category")
    def delete_category(self) -> None:
        target = self.migrate_to.value if self.migrate_to.value != "(none)" else None
        self.dataset.delete_category(self.category_pick.value, target)
        self._after_edit(f"category {self.category_pick.value} deleted")
        self._refresh_canvas()

    def _sync_categories(self) -> None:
        names = self.dataset.categories if self.dataset is not None else []
        self.gt_filter.options = [ANY, "", *names]
        self.pred_filter.options = [ANY, "", *names]
        self.relabel_to.options = names
        self.category_pick.options = names
        self.migrate_to.options = ["(none)", *names]

    # -- testing ---------------------------------------------------------------------------------------------------
    def run_test(self):
        """Test the chosen model on this dataset and show the results; the predictions are written back to the
        dataset, except read-only, where they stay in the report."""
        from astrocyte_lab.modules.registry import entry

        dataset = self.dataset
        if dataset is None or not self.test_model.value:
            raise AstrocyteError("choose a dataset and a trained model first")
        if dataset.dirty:
            raise AstrocyteError("save the dataset's changes before testing (the test writes its predictions)")
        self._say(f"testing {self.test_model.value} ...")
        evaluate = entry(self.state.module).load("evaluate")
        options = self.state.test_options(evaluate)
        self.report = evaluate(self.state.workspace, self.test_model.value, dataset.name, self.test_subset.value,
                               **options)
        if not options:
            self._reload_predictions()
        self.results.children = self._result_views(self.report)
        self.show_page(self.page_index)
        note = " (read-only: predictions not stored)" if options else ""
        self._say(f"tested {self.test_model.value}: {_summary_text(self.report)}{note}")
        return self.report

    def _reload_predictions(self) -> None:
        """Read back the predictions a test or a new threshold saved into the dataset."""
        self.dataset.reload()
        self.query.refresh()
        self._refresh_canvas()
        self._sync_categories()

    def _result_views(self, report, keep_roc: bool = False) -> list[widgets.Widget]:
        views: list[widgets.Widget] = [metrics_table({"": report.summary()}, "summary")]
        confusion = getattr(report, "confusion", None)
        if callable(confusion):  # a table that depends on a threshold (anomaly)
            frame = confusion()
            self.confusion = ConfusionMatrixView(list(frame.index), list(frame.columns), frame.to_numpy(),
                                                 self.drill_down)
            views.append(self.confusion.widget)
        elif confusion is not None and hasattr(report, "rows") and hasattr(report, "columns"):
            self.confusion = ConfusionMatrixView(report.rows, report.columns, confusion, self.drill_down)
            views.append(self.confusion.widget)
        if hasattr(report, "classes"):
            views.append(metrics_table({k: vars(v) for k, v in report.classes.items()}, "per category"))
        if hasattr(report, "iou"):
            views.append(metrics_table({k: {"IoU": v} for k, v in report.iou.items()}, "IoU per category"))
        curve = getattr(report, "curve", None)
        if curve is not None:
            if keep_roc:
                self.roc.show_threshold(report.threshold)
            else:
                self.roc = RocView(curve.fpr, curve.tpr, curve.thresholds, report.threshold, self.set_threshold)
            views.append(self.roc.widget)
        per_class = getattr(report, "ap", None)
        if isinstance(per_class, dict):
            views.append(metrics_table({k: {"AP": v} for k, v in per_class.items()}, "average precision"))
        return views

    def set_threshold(self, value: float) -> None:
        """A new operating threshold picked on the ROC curve (anomaly): decide again, store it with the model
        (read-only: decide again in the report only)."""
        from astrocyte_lab.evaluation.thresholds import apply_threshold

        if self.state.read_only:
            self.report = self.report.with_threshold(float(value))
        else:
            self.report = apply_threshold(self.state.workspace, self.report, value)
            self._reload_predictions()  # the new decisions were saved as the dataset's predictions
        self.results.children = self._result_views(self.report, keep_roc=True)
        self.show_page(self.page_index)
        self._say(f"threshold set to {value:.6g}: {_summary_text(self.report)}")

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _after_edit(self, message: str | None) -> None:
        if self.query is not None:
            self.query.refresh()
        self._sync_categories()
        self._show_info()
        self.show_page(self.page_index)
        if message:
            self._say(message)

    def _path(self, suffix: str) -> Path:
        text = self.path.value.strip()
        if not text:
            raise AstrocyteError(f"type a file path ({suffix}) in the path box first")
        return Path(text).expanduser()

    def _say(self, text: str) -> None:
        self.message.value = html.escape(text)

    def _guard(self, action) -> None:
        run_guarded(action, self.message)


def _row_text(image_id, row) -> str:
    score = "" if row["score"] != row["score"] else f"{row['score']:.3f}"
    return (f"{row['name'][:40]:40} | {row['ground_truth'] or '-':14} | {row['prediction'] or '-':14} | "
            f"{score:6} | {row['set']:10} | {int(row['n_ground_truth'])}/{int(row['n_prediction'])}")


def _summary_text(report) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in report.summary().items())


def _canvas_class():
    """The annotation canvas, when its module is present."""
    try:
        from astrocyte_lab.widgets.canvas import AnnotationCanvas
    except ImportError:
        return None
    return AnnotationCanvas
