"""The App in a real browser, served by Voila and inside JupyterLab: tabs, training with its live plot,
testing and the confusion-matrix drill-down. No request may leave 127.0.0.1."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from astrocyte_lab import Location, NamedSet, Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "widgets"))
from conftest import write_discs  # noqa: E402 - the widgets tests' generator of coloured discs

from .conftest import open_app  # noqa: E402

pytestmark = pytest.mark.browser
WHERE = ["voila", "lab"]


def field(page, kind: str, label: str):
    """The input of an ipywidgets control by its description label."""
    return page.locator(f".widget-{kind}", has=page.locator("label", has_text=re.compile(f"^{label}$"))).first


@pytest.fixture
def discs_workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    folder = write_discs(tmp_path)
    Workspace(workspace).create_dataset("discs", "classification", [NamedSet("s", [Location(
        folder, use_folder_name=True)])], seed=0)
    return workspace


@pytest.mark.parametrize("where", WHERE)
def test_tabs_training_plot_and_confusion_drill_down(where: str, discs_workspace: Path, voila, lab,
                                                     open_page) -> None:
    url = (voila if where == "voila" else lab)(discs_workspace, "classification")
    browser_page = open_page()
    page = browser_page.page
    open_app(browser_page, where, url)
    assert page.get_by_text("Number of images: 16/16").is_visible()
    for title in ("Training", "Trained models", "Inference", "Dataset"):
        page.get_by_role("tab", name=title, exact=True).click()
    page.get_by_role("tab", name="Training", exact=True).click()
    page.get_by_placeholder("name of the trained model").fill("browser-model")
    field(page, "dropdown", "architecture").locator("select").select_option("resnet18")
    for label, value in (("epochs", "2"), ("batch size", "8")):
        box = field(page, "text", label).locator("input")
        box.fill(value)
        box.press("Enter")
    page.locator(".widget-checkbox", has_text="pretrained").first.locator("input").uncheck()
    browser_page.shot("training-form")
    page.locator(".astro-train-save").click()
    page.wait_for_function("""() => [...document.querySelectorAll('.bqplot path.line')]
        .some(p => (p.getAttribute('d') || '').split('L').length > 2)""", timeout=180_000)
    page.get_by_text(re.compile(r"model browser-model saved")).wait_for(timeout=180_000)
    browser_page.shot("trained")

    page.get_by_role("tab", name="Dataset", exact=True).click()
    field(page, "dropdown", "model").locator("select").select_option("browser-model")
    field(page, "dropdown", "images").locator("select").select_option("all")
    page.locator(".astro-test").click()
    page.get_by_text("Confusion matrix (row rate)").wait_for(timeout=120_000)
    browser_page.shot("tested")
    cells = page.locator(".bqplot .heatmapcell, .bqplot g.heatmap rect")
    cells.first.wait_for()
    cells.first.click()
    page.get_by_text(re.compile(r"images with ground truth \w+ predicted as \w+")).wait_for(timeout=30_000)
    count = page.get_by_text(re.compile(r"Number of images: \d+/16")).inner_text()
    shown = int(re.search(r"(\d+)/16", count).group(1))
    assert shown < 16
    browser_page.shot("drill-down")


@pytest.fixture
def detection_workspace(tmp_path: Path) -> Path:
    import cv2
    import numpy as np

    workspace = tmp_path / "ws-det"
    rng = np.random.default_rng(3)
    (tmp_path / "parts").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "parts" / f"part{i}.png"), rng.integers(80, 160, (240, 320, 3), np.uint8))
    dataset = Workspace(workspace).create_dataset("parts", "detection", [NamedSet("s", [Location(
        tmp_path / "parts")])], seed=0)
    dataset.add_category("nut")
    dataset.save()
    return workspace


ROUND_TRIP_JS = """async () => {
    const widget = document.querySelector('.astro-annotation-canvas');
    const canvas = [...widget.querySelectorAll('canvas')].pop();
    const status = widget.lastElementChild;  // the canvas widget's status line
    const rect = canvas.getBoundingClientRect();
    const times = [];
    for (let k = 0; k < 8; k++) {
        const before = status.innerHTML;
        const changed = new Promise(resolve => {
            const observer = new MutationObserver(() => {
                if (status.innerHTML !== before) { observer.disconnect(); resolve(); }
            });
            observer.observe(status, {childList: true, subtree: true, characterData: true});
        });
        await new Promise(r => setTimeout(r, 120));  // past the status throttle of the canvas
        const start = performance.now();
        canvas.dispatchEvent(new MouseEvent('mousemove', {clientX: rect.left + 40 + 9 * k, clientY: rect.top + 50,
                                                          bubbles: true}));
        await changed;
        times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    return times;
}"""


@pytest.mark.parametrize("where", WHERE)
def test_draw_a_box_on_the_canvas_and_save_it(where: str, detection_workspace: Path, voila, lab,
                                              open_page) -> None:
    url = (voila if where == "voila" else lab)(detection_workspace, "detection")
    browser_page = open_page()
    page = browser_page.page
    open_app(browser_page, where, url)
    page.locator(".astro-list select").select_option(index=0)
    page.get_by_role("button", name="Box", exact=True).click()
    layer = page.locator(".astro-annotation-canvas canvas").last
    layer.wait_for()
    box = layer.bounding_box()
    x0, y0 = box["x"] + 60, box["y"] + 60
    page.mouse.move(x0, y0)
    page.mouse.down()
    for step in range(1, 6):
        page.mouse.move(x0 + 24 * step, y0 + 16 * step)
    page.mouse.up()
    page.get_by_text("unsaved changes").first.wait_for(timeout=30_000)
    times = page.evaluate(ROUND_TRIP_JS)
    browser_page.shot("box-drawn")
    page.get_by_role("button", name="Save", exact=True).click()
    deadline = time.time() + 30
    objects = []
    while time.time() < deadline and not objects:
        dataset = Workspace(detection_workspace).dataset("parts")
        objects = [a for i in dataset.ids for a in dataset.objects(int(i))]
    assert len(objects) == 1 and objects[0].category == "nut"
    x1, y1, x2, y2 = objects[0].bounds()
    assert x2 - x1 > 20 and y2 - y1 > 10
    median = times[len(times) // 2]
    print(f"\n{where}: canvas mouse event -> Python -> status shown: median {median:.0f} ms, all {times}")
    assert median < 1000  # the target (< 100 ms one way) is reported, not asserted: CI machines are shared


@pytest.fixture
def anomaly_workspace(tmp_path: Path) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("anomaly_data", Path(__file__).parents[1] / "modules" / "anomaly"
                                                  / "conftest.py")
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    source = data.write_images(tmp_path / "tiles-images", normal=12, anomalies=4)
    data.fit_model(tmp_path / "ws-anomaly", source, name="patchcore")
    return tmp_path / "ws-anomaly"


@pytest.mark.parametrize("where", WHERE)
def test_roc_click_sets_the_threshold(where: str, anomaly_workspace: Path, voila, lab, open_page) -> None:
    url = (voila if where == "voila" else lab)(anomaly_workspace, "anomaly")
    browser_page = open_page()
    page = browser_page.page
    open_app(browser_page, where, url)
    field(page, "dropdown", "model").locator("select").select_option("patchcore")
    field(page, "dropdown", "images").locator("select").select_option("all")
    page.locator(".astro-test").click()
    page.locator(".astro-roc").last.wait_for(timeout=120_000)
    before = page.get_by_text(re.compile(r"^threshold \d")).first.inner_text()
    # click where (FPR 1, TPR 1) is drawn: the most lenient point, every image an anomaly
    from astrocyte_lab.widgets.results import RocView

    box = page.locator(".astro-roc").last.bounding_box()
    x, y = RocView.to_pixels(RocView.__new__(RocView), 1.0, 1.0)
    page.mouse.click(box["x"] + x * box["width"] / RocView.WIDTH, box["y"] + y * box["height"] / RocView.HEIGHT)
    page.get_by_text(re.compile(r"threshold set to")).wait_for(timeout=30_000)
    after = page.get_by_text(re.compile(r"^threshold \d")).first.inner_text()
    assert after != before
    browser_page.shot("roc-threshold")
    deadline = time.time() + 30
    while time.time() < deadline:
        table = Workspace(anomaly_workspace).dataset("tiles").table
        if (table["prediction"] == "Anomaly").all():
            break
        time.sleep(0.5)
    assert (table["prediction"] == "Anomaly").all()
