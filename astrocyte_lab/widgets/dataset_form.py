"""The create-dataset form: image locations with filters and categories, annotation databases, generation size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets

from astrocyte_lab.data.generate import GenerationOptions
from astrocyte_lab.data.sources import DatabaseSet, Location, NamedSet
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.widgets.forms import _parse_size

CORRECTIONS = ("exclude", "resize", "resize_keep_aspect", "crop")
FOLDER_NAME = "(folder name)"


class LocationRow:
    """One image folder: path, sub-folders, name filter, and the category of its images."""

    def __init__(self, module: str, on_remove: Callable[[LocationRow], None]) -> None:
        wide = widgets.Layout(width="320px")
        self.path = widgets.Text(placeholder="folder of images", layout=wide)
        self.subfolders = widgets.Checkbox(value=True, description="subfolders", indent=False,
                                           layout=widgets.Layout(width="100px"))
        self.name_filter = widgets.Dropdown(options=["none", "prefix", "suffix", "regex"], value="none",
                                            layout=widgets.Layout(width="90px"))
        self.pattern = widgets.Text(placeholder="pattern", layout=widgets.Layout(width="110px"))
        options = ["Normal", "Anomaly"] if module == "anomaly" else [FOLDER_NAME, "(none)"]
        self.category = widgets.Combobox(options=options, value=options[0], placeholder="category",
                                         layout=widgets.Layout(width="150px"))
        self.masks = widgets.Text(placeholder="mask folder (optional)", layout=widgets.Layout(width="200px"),
                                  disabled=module not in ("segmentation", "anomaly"))
        remove = widgets.Button(icon="trash", tooltip="remove this location", layout=widgets.Layout(width="36px"))
        remove.on_click(lambda _: on_remove(self))
        self.widget = widgets.HBox([self.path, self.subfolders, self.name_filter, self.pattern, self.category,
                                    self.masks, remove])

    def named_set(self, index: int) -> NamedSet:
        if not self.path.value.strip():
            raise AstrocyteError(f"location {index + 1}: the folder is empty")
        category = self.category.value.strip()
        location = Location(Path(self.path.value.strip()).expanduser(), self.subfolders.value,
                            name_filter=self.name_filter.value, pattern=self.pattern.value,  # type: ignore[arg-type]
                            category=None if category in (FOLDER_NAME, "(none)", "") else category,
                            use_folder_name=category == FOLDER_NAME)
        masks = Location(Path(self.masks.value.strip()).expanduser()) if self.masks.value.strip() else None
        return NamedSet(f"set{index + 1}", [location], masks)


class DatasetForm:
    """Fields of a new dataset; :meth:`create` makes it in the workspace and returns its name."""

    def __init__(self, workspace, module: str, on_done: Callable[[str | None], None]) -> None:
        self.workspace, self.module, self.on_done = workspace, module, on_done
        self.name = widgets.Text(description="name", placeholder="dataset name")
        self.description = widgets.Text(description="description", layout=widgets.Layout(width="500px"))
        self.rows: list[LocationRow] = []
        self.locations = widgets.VBox([])
        add = widgets.Button(description="Add location", icon="plus")
        add.on_click(lambda _: self.add_location())
        self.db_format = widgets.Dropdown(options=["(none)", "voc", "coco", "kitti", "yolo", "text"],
                                          description="database")
        self.db_annotations = widgets.Text(placeholder="annotations (folder or file)")
        self.db_images = widgets.Text(placeholder="image folder")
        self.db_names = widgets.Text(placeholder="YOLO names file / text columns e.g. image,class,x1,y1,x2,y2")
        self.max_size = widgets.Text(description="max size", placeholder="WxH, empty = original")
        self.correction = widgets.Dropdown(options=list(CORRECTIONS), value="exclude", description="correction",
                                           tooltip="what to do with images whose size differs from the majority")
        self.message = widgets.HTML("")
        create = widgets.Button(description="Generate and save", button_style="primary", icon="check")
        create.on_click(lambda _: self.create())
        cancel = widgets.Button(description="Cancel")
        cancel.on_click(lambda _: self.on_done(None))
        self.widget = widgets.VBox([
            widgets.HTML("<b>New dataset</b>"), self.name, self.description,
            widgets.HTML("Locations (folder, sub-folders, name filter, pattern, category, masks)"),
            self.locations, add,
            widgets.HBox([self.db_format, self.db_annotations, self.db_images, self.db_names]),
            widgets.HBox([self.max_size, self.correction]), widgets.HBox([create, cancel]), self.message])
        self.add_location()

    def add_location(self) -> LocationRow:
        row = LocationRow(self.module, self._remove)
        self.rows.append(row)
        self.locations.children = [r.widget for r in self.rows]
        return row

    def _remove(self, row: LocationRow) -> None:
        self.rows.remove(row)
        self.locations.children = [r.widget for r in self.rows]

    def sets(self) -> list:
        sets: list = [row.named_set(i) for i, row in enumerate(self.rows) if row.path.value.strip()]
        if self.db_format.value != "(none)":
            from astrocyte_lab.formats.registry import build_database

            extra = self.db_names.value.strip()
            options = {"names": Path(extra)} if self.db_format.value == "yolo" and extra else {}
            if self.db_format.value == "text":
                options = {"columns": extra}
            database = build_database(self.db_format.value, Path(self.db_annotations.value.strip()),
                                      Path(self.db_images.value.strip()), **options)
            sets.append(DatabaseSet("database", database))
        if not sets:
            raise AstrocyteError("add at least one image location or an annotation database")
        return sets

    def create(self) -> str | None:
        name = self.name.value.strip()
        try:
            if not name:
                raise AstrocyteError("the dataset needs a name")
            options = GenerationOptions(max_size=_parse_size(self.max_size.value), correction=self.correction.value)
            self.message.value = "generating ..."
            dataset = self.workspace.create_dataset(name, self.module, self.sets(), self.description.value,
                                                    options=options)
        except (AstrocyteError, ValueError, OSError) as exc:
            self.message.value = f"<span style='color:#c62828'>{exc}</span>"
            return None
        report = dataset.last_report
        skipped = len(report.skipped) if report is not None else 0
        note = f", {skipped} skipped" if skipped else ""
        self.message.value = f"created {dataset.name}: {len(dataset)} images{note}"
        self.on_done(name)
        return name
