"""Image-list responsiveness on a large dataset: each filter / page action of the Dataset panel, timed in Python.

Builds a classification dataset of ``--images`` small generated images (default 10,000) in a temporary
workspace, opens the App's Dataset panel on it and times what a user does with the list: type a name filter,
pick a ground truth, pick a set, page forward, switch the pseudo-label filter, clear, sort by score. Each action
is the panel's own handler (filter -> ImageQuery -> page rows -> list options), as a widget change would run
it. Target: under 0.2 s per action.

    .venv/bin/python benchmarks/widgets.py [--images 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

TARGET_S = 0.2


def write_images(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for index in range(count):
        category = ("good", "scratch", "dent")[index % 3]
        (folder / category).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / category / f"part_{index:05d}.png"), rng.integers(0, 255, (16, 16), np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from astrocyte_lab import Location, NamedSet, Workspace
    from astrocyte_lab.widgets import App

    root = Path(tempfile.mkdtemp(prefix="astro-widgets-"))
    try:
        start = time.perf_counter()
        write_images(root / "images", args.images)
        ws = Workspace(root / "ws")
        ws.create_dataset("big", "classification", [NamedSet("all", [Location(root / "images",
                                                                              use_folder_name=True)])], seed=0)
        built = time.perf_counter() - start
        start = time.perf_counter()
        panel = App(ws, module="classification").dataset
        opened = time.perf_counter() - start
        def set_value(box, value):
            return lambda: setattr(box, "value", value)

        def clear() -> None:
            for box, value in ((panel.name_filter, ""), (panel.gt_filter, "(any)"), (panel.set_filter, "(any)"),
                               (panel.pseudo_filter, "all")):
                box.value = value

        # (label, untimed set-up, timed action); every action starts from the unfiltered list
        actions = [
            ("name filter 'part_01'", clear, set_value(panel.name_filter, "part_01")),
            ("ground truth = scratch", clear, set_value(panel.gt_filter, "scratch")),
            ("set = auto", clear, set_value(panel.set_filter, "auto")),
            ("next page", clear, lambda: panel.show_page(panel.page_index + 1)),
            ("pseudo filter = exclude", clear, set_value(panel.pseudo_filter, "exclude")),
            ("clear two filters", lambda: (clear(), set_value(panel.name_filter, "part_0")(),
                                           set_value(panel.gt_filter, "dent")()), clear),
            ("sort by score", clear, lambda: (panel.query.sort("score", ascending=False), panel.show_page(0))),
        ]
        results = []
        for label, setup, action in actions:
            times = []
            for _ in range(args.repeats):
                setup()
                begin = time.perf_counter()
                action()
                times.append(time.perf_counter() - begin)
            results.append((label, statistics.median(times), max(times)))
        print(f"Dataset panel on {len(ws.dataset('big'))} images (built in {built:.1f} s, panel opened in "
              f"{opened:.2f} s); median / worst of {args.repeats} runs per action, target {TARGET_S} s")
        width = max(len(label) for label, _, _ in results)
        for label, median, worst in results:
            mark = "ok" if worst < TARGET_S else "SLOW"
            print(f"  {label:<{width}}  {median * 1000:7.1f} ms  {worst * 1000:7.1f} ms  {mark}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
