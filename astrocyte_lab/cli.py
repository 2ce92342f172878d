"""The ``astrocyte-lab`` command line: datasets, sample data and workspace backup."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from astrocyte_lab import cli_dashboard, cli_databases, cli_models
from astrocyte_lab.cli_common import WorkspaceOption, parse_size, report_broken
from astrocyte_lab.cli_common import fail as _fail
from astrocyte_lab.cli_common import workspace_of as _workspace
from astrocyte_lab.data.categories import MODULES
from astrocyte_lab.data.generate import GenerationOptions
from astrocyte_lab.data.sources import Location, NamedSet
from astrocyte_lab.data.workspace import Workspace, default_home
from astrocyte_lab.errors import AstrocyteError

app = typer.Typer(help="astrocyte-lab: machine-vision model training in JupyterLab.", no_args_is_help=True,
                  add_completion=False)
datasets_app = typer.Typer(help="Create, inspect, export, import and merge datasets.", no_args_is_help=True)
samples_app = typer.Typer(help="Procedural sample datasets for the tutorials.", no_args_is_help=True)
workspace_app = typer.Typer(help="Back up and restore the whole workspace.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(samples_app, name="samples")
app.add_typer(workspace_app, name="workspace")

@contextmanager
def _progress(title: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar (on stderr) fed by the engine's ``on_progress(done, total)`` callbacks."""
    bar = tqdm(desc=title, unit="img", file=sys.stderr, disable=None, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


@datasets_app.command("list")
def datasets_list(workspace: WorkspaceOption = None,
                  as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List datasets with module, image dimensions, image count, update time and description."""
    ws = _workspace(workspace)
    infos, broken = ws.dataset_listing()
    if as_json:
        typer.echo(json.dumps([{**i.__dict__, "categories": list(i.categories)} for i in infos], indent=1))
        report_broken(broken)
        return
    if not infos and not broken:
        typer.echo("no datasets")
    for i in infos:
        typer.echo(f"{i.name:24} {i.module:15} {i.dimensions:16} {i.images:6d} images  {i.updated}  "
                   f"{i.description}")
    report_broken(broken)


@datasets_app.command("create")
def datasets_create(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    module: Annotated[str, typer.Option(help=f"One of {', '.join(MODULES)}.")],
    location: Annotated[list[str], typer.Option(
        "--location", "-l", help="Image folder, optionally PATH::CATEGORY; repeat for several.")],
    masks: Annotated[Path | None, typer.Option(
        help="Mask folder matched by file stem (segmentation, anomaly).")] = None,
    use_folder_name: Annotated[bool, typer.Option(help="Label each image with its folder's name.")] = False,
    subfolders: Annotated[bool, typer.Option(help="Search subfolders too.")] = True,
    types: Annotated[str, typer.Option(help="Comma-separated file types, e.g. png,jpg (default: all).")] = "",
    name_filter: Annotated[str, typer.Option(help="none, prefix, suffix or regex.")] = "none",
    pattern: Annotated[str, typer.Option(help="Text or regular expression for --name-filter.")] = "",
    full_path: Annotated[bool, typer.Option(help="Apply the name filter to the full path.")] = False,
    max_size: Annotated[str | None, typer.Option(help="Shrink larger images to fit WIDTHxHEIGHT.")] = None,
    correction: Annotated[str, typer.Option(
        help="For images of a differing size: exclude, resize, resize_keep_aspect or crop.")] = "exclude",
    description: Annotated[str, typer.Option(help="Free text shown in the dataset list.")] = "",
    train_ratio: Annotated[float, typer.Option(help="Share of auto images assigned to training.")] = 0.8,
    seed: Annotated[int, typer.Option(help="Shuffle seed (-1: random, recorded).")] = -1,
    workspace: WorkspaceOption = None,
) -> None:
    """Generate a dataset from image folders and save it in the workspace."""
    file_types = tuple(t for t in types.split(",") if t)
    try:
        locations = []
        for spec in location:
            path, _, category = spec.partition("::")
            locations.append(Location(path, subfolders, file_types, name_filter, pattern,  # type: ignore[arg-type]
                                      full_path, category or None, use_folder_name))
        masks_location = Location(masks, subfolders) if masks else None
        options = GenerationOptions(max_size=parse_size(max_size), correction=correction)
        with _progress("generating") as on_progress:
            dataset = _workspace(workspace).create_dataset(
                name, module, [NamedSet("set1", locations, masks_location)], description, options, train_ratio, seed,
                on_progress)
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    typer.echo(dataset.last_report.summary() if dataset.last_report else "")
    typer.echo(repr(dataset))


@datasets_app.command("info")
def datasets_info(name: str, workspace: WorkspaceOption = None) -> None:
    """Show a dataset's size, categories and per-category counts."""
    try:
        dataset = _workspace(workspace).dataset(name)
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    table = dataset.table
    info = dataset.info()
    typer.echo(json.dumps({
        "name": info.name, "module": info.module, "dimensions": info.dimensions, "images": info.images,
        "bit_depth": dataset.bit_depth, "categories": list(info.categories),
        "counts": {k or "(unlabelled)": int(v) for k, v in table["ground_truth"].value_counts().items()},
        "objects": cli_databases.object_counts(dataset), "labelled_images": int((table["n_ground_truth"] > 0).sum()),
        "assigned": {k: int(v) for k, v in table["assigned"].value_counts().items()},
        "masks": int(table["has_mask"].sum()), "roi": dataset.roi_bbox(),
        "updated": info.updated, "description": info.description}, indent=1))


@datasets_app.command("csv")
def datasets_csv(name: str, output: Path, workspace: WorkspaceOption = None) -> None:
    """Save the dataset's image table to a CSV file."""
    try:
        path = _workspace(workspace).dataset(name).to_csv(output)
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    typer.echo(str(path))


@datasets_app.command("export")
def datasets_export(
    name: str, output: Path,
    format: Annotated[str, typer.Option(
        "--format", "-f", help="astrods (whole dataset, for import elsewhere), or voc / coco / yolo with "
                               "annotations (voc to a .tar file or a folder).")] = "astrods",
    include_pseudo: Annotated[bool, typer.Option(help="Also export pseudo labels (voc/coco/yolo).")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Export a dataset: one .astrods file another workspace imports, or images + annotations."""
    try:
        ws = _workspace(workspace)
        if format == "astrods":
            path = ws.export_dataset(name, output)
        else:
            from astrocyte_lab.formats.export import export_annotated

            path = export_annotated(ws.dataset(name), output, format, include_pseudo)  # type: ignore[arg-type]
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    typer.echo(str(path))


@datasets_app.command("import")
def datasets_import(file: Path, name: Annotated[str | None, typer.Option(help="New name.")] = None,
                    workspace: WorkspaceOption = None) -> None:
    """Import a dataset exported with ``datasets export``."""
    try:
        dataset = _workspace(workspace).import_dataset(file, name)
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    typer.echo(repr(dataset))


@datasets_app.command("merge")
def datasets_merge(target: str, sources: list[str], workspace: WorkspaceOption = None) -> None:
    """Append the images of SOURCES into TARGET (same module and image size)."""
    try:
        dataset = _workspace(workspace).merge_datasets(target, sources)
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    typer.echo(repr(dataset))


@datasets_app.command("shuffle")
def datasets_shuffle(name: str, ratio: Annotated[float, typer.Option(help="Train share of auto images.")] = 0.8,
                     seed: Annotated[int, typer.Option(help="-1: random (recorded).")] = -1,
                     workspace: WorkspaceOption = None) -> None:
    """Re-draw the train/validation assignment of auto images and save."""
    try:
        dataset = _workspace(workspace).dataset(name)
        dataset.shuffle(ratio, seed)
        dataset.save()
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    counts = dataset.table["assigned"].value_counts()
    typer.echo(f"train {int(counts.get('train', 0))}, validation {int(counts.get('validation', 0))}")


@datasets_app.command("delete")
def datasets_delete(name: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
                    workspace: WorkspaceOption = None) -> None:
    """Delete a dataset from the workspace (source folders are untouched)."""
    if not yes:
        typer.confirm(f"delete dataset {name!r}?", abort=True)
    try:
        _workspace(workspace).delete_dataset(name)
    except AstrocyteError as exc:
        raise _fail(exc) from exc


cli_databases.register(datasets_app)
cli_models.register(app)
cli_dashboard.register(app)


@samples_app.command("generate")
def samples_generate(
    dest: Annotated[Path, typer.Option(help="Folder that receives one subfolder per sample.")] = Path("datasets"),
    scale: Annotated[int, typer.Option(help="Multiply image counts (1 = small, for tests).")] = 1,
    only: Annotated[list[str] | None, typer.Option(help="Generate only these samples; repeat.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Regenerate even when up to date.")] = False,
) -> None:
    """Generate the procedural sample datasets (deterministic; skips those already up to date)."""
    from astrocyte_lab import samples

    try:
        folders = samples.generate(dest, only or None, scale=scale, overwrite=overwrite)
    except ValueError as exc:
        raise _fail(exc) from exc
    for name, folder in folders.items():
        typer.echo(f"{name:12} {folder}")


@workspace_app.command("backup")
def workspace_backup(output: Path, workspace: WorkspaceOption = None) -> None:
    """Pack the whole workspace into one file."""
    try:
        path = _workspace(workspace).backup(output)
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    typer.echo(str(path))


@workspace_app.command("restore")
def workspace_restore(file: Path, workspace: WorkspaceOption = None,
                      overwrite: Annotated[bool, typer.Option(help="Replace a non-empty workspace.")] = False) -> None:
    """Recreate a workspace from a backup file."""
    try:
        restored = Workspace.restore(file, workspace or default_home(), overwrite)
    except AstrocyteError as exc:
        raise _fail(exc) from exc
    typer.echo(repr(restored))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
