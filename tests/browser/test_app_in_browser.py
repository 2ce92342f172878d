"""The App in a real browser, served by Voila and inside JupyterLab: tabs, training with its live plot,
testing and the confusion-matrix drill-down. No request may leave 127.0.0.1."""

from __future__ import annotations

import re
import sys
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
