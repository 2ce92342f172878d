"""The Inference tab: run a trained model's deployable package on new images and show each result.

Inference goes through the same torch-free package a deployment uses (exported once per model into the
workspace), so what the user sees here is what the production code will return. Continual-learning
models can learn a shown image as an existing or a new category. Read-only, packages are built in a temporary
folder outside the workspace and learning is left out of the view.
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.evaluation import render
from astrocyte_lab.modules.registry import entry
from astrocyte_lab.runtime import AstromodelError, load_image
from astrocyte_lab.widgets.messages import run_guarded
from astrocyte_lab.widgets.state import AppState, editing

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class InferencePanel:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.predictor = None
        self._scratch: tempfile.TemporaryDirectory | None = None  # read-only: packages built outside the workspace
        self.images: list[tuple[str, np.ndarray | Path]] = []
        self.model = widgets.Dropdown(description="model", options=[], layout=widgets.Layout(width="320px"))
        self.model.observe(lambda _: self._drop_predictor(), "value")
        self.folder = widgets.Text(placeholder="folder of images", layout=widgets.Layout(width="320px"))
        load = widgets.Button(description="Load folder", icon="folder-open")
        load.on_click(lambda _: self._guard(self.load_folder))
        self.upload = widgets.FileUpload(accept=",".join(IMAGE_TYPES), multiple=True, description="Upload")
        self.upload.observe(lambda _: self._guard(self.load_uploads), "value")
        self.thresholds = widgets.VBox([])
        self.image_list = widgets.Select(options=[], rows=10, layout=widgets.Layout(width="320px"))
        self.image_list.observe(lambda change: self._guard(lambda: self.show(change["new"])), "value")
        run_all = widgets.Button(description="Predict all", icon="play", button_style="primary")
        run_all.on_click(lambda _: self._guard(self.predict_all))
        self.picture = widgets.Image(format="png", layout=widgets.Layout(max_width="640px"))
        self.result = widgets.HTML("")
        self.summary = widgets.HTML("")
        self.learn_category = widgets.Combobox(placeholder="category to learn", options=[])
        learn = widgets.Button(description="Learn", icon="graduation-cap")
        learn.on_click(lambda _: self._guard(self.learn_shown))
        save = widgets.Button(description="Save learned package", icon="save")
        save.on_click(lambda _: self._guard(self.save_learned))
        self.learn_box = widgets.HBox([self.learn_category, learn, save], layout=widgets.Layout(display="none"))
        self.message = widgets.HTML("")
        learning = [] if state.read_only else [self.learn_box]  # read-only: left out of the view
        self.widget = widgets.VBox([
            widgets.HBox([self.model, self.folder, load, self.upload]), self.thresholds,
            widgets.HBox([widgets.VBox([self.image_list, run_all, self.summary]),
                          widgets.VBox([self.picture, self.result, *learning])]),
            self.message])
        state.observe(lambda _: self.refresh(), "revision")
        self.refresh()

    def refresh(self) -> None:
        self.model.options = self.state.model_names()

    # -- model -----------------------------------------------------------------------------------------------------
    def _drop_predictor(self) -> None:
        self.predictor = None
        self.thresholds.children = []

    def predictor_for_model(self):
        """The chosen model's package, exported into the workspace once and loaded with onnxruntime."""
        from astrocyte_lab.runtime import load_package

        name = self.model.value
        if not name:
            raise AstrocyteError("choose a trained model first")
        if self.predictor is not None and self.predictor.name == name:
            return self.predictor
        self.predictor = load_package(self.package(name))
        self._show_thresholds()
        continual = self.predictor.is_continual and not self.state.read_only
        self.learn_box.layout.display = "flex" if continual else "none"
        self.learn_category.options = self.predictor.categories
        return self.predictor

    def package(self, name: str) -> Path:
        """Model ``name``'s package, exported once into ``<workspace>/inference`` and reused while the model is
        unchanged; read-only, a missing or outdated one is exported into a temporary folder instead."""
        record_file = self.state.workspace.model_store.folder(name) / "model.json"
        folders = [self.state.workspace.path / "inference"]
        if self.state.read_only:
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="astrocyte-inference-")
            folders.append(Path(self._scratch.name))
        for folder in folders:
            package = folder / f"{name}.astromodel"
            if package.exists() and package.stat().st_mtime >= record_file.stat().st_mtime:
                return package
        folders[-1].mkdir(parents=True, exist_ok=True)
        package = folders[-1] / f"{name}.astromodel"
        entry(self.state.module).load("export")(self.state.workspace, name, package)
        return package

    def _show_thresholds(self) -> None:
        inputs = []
        for key, value in self.predictor.options().items():
            box = (widgets.IntText(value=int(value)) if isinstance(value, int) and not isinstance(value, bool)
                   else widgets.FloatText(value=float(value)))
            box.description, box.style = key.replace("_", " "), {"description_width": "140px"}
            box.observe(lambda change, k=key: self._guard(lambda: self.set_option(k, change["new"])), "value")
            inputs.append(box)
        self.thresholds.children = inputs

    def set_option(self, key: str, value: float) -> None:
        """Run the package with another value of one of its options (confidence, overlap, threshold, ...)."""
        self.predictor.configure(**{key: value})
        if self.image_list.value:
            self.show(self.image_list.value)

    # -- images ------------------------------------------------------------------------------------------------------
    def load_folder(self) -> None:
        folder = Path(self.folder.value.strip()).expanduser()
        if not folder.is_dir():
            raise AstrocyteError(f"{folder} is not a folder")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_TYPES)
        if not files:
            raise AstrocyteError(f"no image in {folder}")
        self.images = [(str(p.relative_to(folder)), p) for p in files]
        self.image_list.options = [name for name, _ in self.images]

    def load_uploads(self) -> None:
        """Decode uploaded files with the runtime's reader (what a deployment does: its pixel limit, its errors)."""
        added = [(item["name"], decode_upload(item["name"], bytes(item["content"]))) for item in self.upload.value]
        self.images += added
        self.image_list.options = [name for name, _ in self.images]

    def _image(self, name: str) -> np.ndarray | Path:
        for key, image in self.images:
            if key == name:
                return image
        raise AstrocyteError(f"no image {name!r} loaded")

    def show(self, name: str | None):
        """Predict one loaded image and show the result over it."""
        if not name:
            return None
        predictor = self.predictor_for_model()
        source = self._image(name)
        prediction = predictor.predict(source)
        image = load_image(source) if isinstance(source, Path) else source
        self.picture.value = render.png_bytes(result_picture(image, prediction, predictor.categories))
        self.result.value = (f"<b>{html.escape(str(prediction.label))}</b> score {prediction.score:.3f} "
                             f"&middot; {prediction.ms:.1f} ms")
        self.shown = (name, source, prediction)
        return prediction

    def predict_all(self) -> dict[str, int]:
        """Predict every loaded image; the summary counts images per label and gives the mean time."""
        predictor = self.predictor_for_model()
        counts: dict[str, int] = {}
        times = []
        for _, source in self.images:
            prediction = predictor.predict(source)
            counts[str(prediction.label)] = counts.get(str(prediction.label), 0) + 1
            times.append(prediction.ms)
        mean = float(np.mean(times)) if times else 0.0
        self.summary.value = ("<br>".join(f"{html.escape(k)}: {v}" for k, v in sorted(counts.items()))
                              + f"<br><i>{len(times)} images, {mean:.1f} ms each</i>")
        return counts

    # -- continual learning --------------------------------------------------------------------------------------------
    @editing("learn a new example")
    def learn_shown(self) -> int:
        if not getattr(self, "shown", None):
            raise AstrocyteError("show an image first")
        category = self.learn_category.value.strip()
        if not category:
            raise AstrocyteError("type or pick the category to learn")
        count = self.predictor.learn(self.shown[1], category)
        self.learn_category.options = self.predictor.categories
        self.message.value = f"learned {html.escape(category)} ({count} examples); save to keep it"
        self.show(self.shown[0])
        return count

    @editing("save a learned package")
    def save_learned(self) -> Path:
        target = self.state.workspace.path / "inference" / f"{self.predictor.name}-learned.astromodel"
        path = self.predictor.save(target)
        self.message.value = f"saved {html.escape(str(path))}"
        return path

    def _guard(self, action) -> None:
        run_guarded(action, self.message)


def detected_objects(prediction) -> list:
    """A detection result's boxes (or rotated boxes) as annotations with scores, for drawing."""
    from astrocyte_lab.data.annotations import Box, RotatedBox

    boxes = getattr(prediction, "boxes", None)
    if boxes is None:
        return []
    rotated = getattr(prediction, "rotated", None)
    out = []
    for index, (label, score) in enumerate(zip(prediction.labels, prediction.scores, strict=True)):
        if rotated is not None:
            out.append(RotatedBox(label, *(float(v) for v in rotated[index][:5]), score=float(score)))
        else:
            out.append(Box(label, *(float(v) for v in boxes[index][:4]), score=float(score)))
    return out


def result_picture(image: np.ndarray, prediction, categories: list[str]) -> np.ndarray:
    """The image with whatever the prediction carries drawn over it: a mask, a heatmap, or objects."""
    rgb = render.display_rgb(image)
    mask = getattr(prediction, "mask", None)
    if mask is not None:
        rgb = render.overlay_mask(rgb, mask, None, categories or ["normal", "anomaly"],
                                  getattr(prediction, "background", 0))
    heatmap = getattr(prediction, "heatmap", None)
    if heatmap is not None and mask is None:
        rgb = render.overlay_heatmap(rgb, heatmap)
    objects = getattr(prediction, "objects", None) or detected_objects(prediction)
    if objects:
        rgb = render.draw_objects(rgb, objects, render.category_colours(categories), predicted=True)
    return rgb


def decode_upload(name: str, content: bytes) -> np.ndarray:
    """One uploaded image file as the runtime reads it; a refusal names the upload, not a temporary path."""
    with tempfile.TemporaryDirectory(prefix="astrocyte-upload-") as folder:
        path = Path(folder) / f"upload{Path(name).suffix[:16]}"
        path.write_bytes(content)
        try:
            return load_image(path)
        except (AstromodelError, OSError) as exc:
            raise AstrocyteError(f"{name}: {str(exc).replace(str(path), 'upload')}") from None
