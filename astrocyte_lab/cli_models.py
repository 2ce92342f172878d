"""``astrocyte-lab train / test / export / predict / models / quickstart``: the model life cycle from a terminal."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from astrocyte_lab.cli_common import WorkspaceOption, fail, parse_size, report_broken, workspace_of
from astrocyte_lab.errors import AstrocyteError

models_app = typer.Typer(help="List, rename, delete, export and import trained models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")

    @app.command("train")
    def train(
        dataset: Annotated[str, typer.Argument(help="Classification dataset to train on.")],
        model: Annotated[str, typer.Argument(help="Name of the new trained model.")],
        architecture: Annotated[str | None, typer.Option(
            help="Classification: tf_efficientnet_lite0 (default), resnet18/50/101, squeezenet1_1. Segmentation: "
                 "manet_lite0 (default), deeplabv3_resnet50/101, unet_resnet18/50.")] = None,
        epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
        batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 16,
        learning_rate: Annotated[float, typer.Option(help="Between 1e-8 and 1.")] = 1e-3,
        region_size: Annotated[str | None, typer.Option(help="Network input WxH (default: dataset size).")] = None,
        early_stopping: Annotated[bool, typer.Option(help="Stop when validation loss stops improving.")] = False,
        continual: Annotated[bool, typer.Option(help="Keep class prototypes for learning at run time.")] = False,
        fast_training: Annotated[bool, typer.Option(help="Train the last layer only.")] = False,
        pretrained: Annotated[bool, typer.Option(help="Start from pretrained weights when available.")] = True,
        seed: Annotated[int, typer.Option(help="-1: random (recorded).")] = -1,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda:N.")] = "auto",
        description: Annotated[str, typer.Option(help="Free text kept with the model.")] = "",
        auto: Annotated[str | None, typer.Option(
            help="Auto train: low, medium, high (20 / 40 / 60 trials) or a number of trials. Each trial trains "
                 "up to --epochs with early stopping; --learning-rate seeds the first trial.")] = None,
        devices: Annotated[str | None, typer.Option(
            help="Auto train: comma-separated devices, one trial on each at a time (e.g. cuda:0,cuda:1).")] = None,
        workspace: WorkspaceOption = None,
    ) -> None:
        """Train a model on a dataset (the dataset's module picks the trainer) and store it in the workspace."""
        from astrocyte_lab.modules.registry import entry
        from astrocyte_lab.training.progress import follow

        try:
            ws = workspace_of(workspace)
            module = ws.dataset(dataset).module
            options = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                           region_size=parse_size(region_size), early_stopping=early_stopping,
                           fast_training=fast_training, pretrained=pretrained, seed=seed, device=device)
            if architecture:
                options["architecture"] = architecture
            if continual:
                options["continual"] = True
            config = entry(module).load("config")(**options)
            if devices and not auto:
                raise AstrocyteError("--devices runs auto-train trials in parallel; manual training uses one --device")
            if auto:
                from astrocyte_lab.training.auto import auto_train

                job = auto_train(ws, dataset, model, config, auto, devices.split(",") if devices else None,
                                 description=description)
                job.subscribe(lambda e: e.kind == "trial" and typer.echo(
                    f"trial {e.values['trial']:.0f}: {e.message}, value {e.values['value']:.4g}, best "
                    f"{e.values['best']:.4g} ({e.values['finished']:.0f}/{e.values['total']:.0f})", err=True))
            else:
                job = entry(module).load("train_job")(ws, dataset, model, config, description)
            follow(job)
            job.result()
        except (AstrocyteError, ValueError) as exc:
            raise fail(exc) from exc
        info = workspace_of(workspace).model_store.info(model)
        summary = {"model": info.name, "metrics": info.performance, "duration_s": info.duration_s}
        if auto:
            search = workspace_of(workspace).model_store.record(model)["auto"]
            summary.update(trials=len(search["trials"]), best_trial=search["best_trial"])
        typer.echo(json.dumps(summary))

    @app.command("test")
    def test(model: str, dataset: str,
             subset: Annotated[str, typer.Option(help="train, validation or all.")] = "validation",
             batch_size: Annotated[int, typer.Option()] = 32, workspace: WorkspaceOption = None) -> None:
        """Test a model on a dataset: prints the module's report (predictions are written back to the dataset)."""

        from astrocyte_lab.modules.registry import entry

        try:
            ws = workspace_of(workspace)
            module = ws.model_store.record(model)["module"]
            evaluate = entry(module).load("evaluate")
            options = {"batch_size": batch_size} if "batch_size" in inspect.signature(evaluate).parameters else {}
            report = evaluate(ws, model, dataset, subset, **options)
        except AstrocyteError as exc:
            raise fail(exc) from exc
        for line in report.lines():
            typer.echo(line)
        typer.echo(json.dumps(report.summary()))

    @app.command("export")
    def export(model: str, output: Path, workspace: WorkspaceOption = None,
               int8: Annotated[bool, typer.Option("--int8", help="Quantise the convolutions to int8 (detection "
                                                  "models; faster on CPU, test the package for its AP).")] = False,
               ) -> None:
        """Export a trained model as a deployable .astromodel package (runs without PyTorch)."""
        from astrocyte_lab.modules.registry import entry

        try:
            ws = workspace_of(workspace)
            module = ws.model_store.record(model)["module"]
            export_model = entry(module).load("export")
            options = {}
            if int8:
                if "int8" not in inspect.signature(export_model).parameters:
                    raise AstrocyteError(f"--int8 is available for detection models; {model!r} is a {module} model")
                options["int8"] = True
            path = export_model(ws, model, output, **options)
        except AstrocyteError as exc:
            raise fail(exc) from exc
        typer.echo(str(path))

    @app.command("predict")
    def predict(package: Path, images: Annotated[list[Path], typer.Argument(help="Image files.")]) -> None:
        """Run a package on images: prints label, score and milliseconds per image."""
        from astrocyte_lab.runtime import AstromodelError, load_package

        try:
            predictor = load_package(package)
            for image in images:
                result = predictor.predict(image)
                typer.echo(f"{image}\t{result.label}\t{result.score:.4f}\t{result.ms:.1f} ms")
        except (AstrocyteError, AstromodelError) as exc:
            raise fail(exc) from exc

    @app.command("quickstart")
    def quickstart(
        module: Annotated[str, typer.Argument(help="anomaly, classification, continual, detection, detection-rotated, "
                                                   "detection-selftrain, detection-tiling or segmentation.")],
        workspace: WorkspaceOption = None,
        fast: Annotated[bool, typer.Option(help="Fewer epochs (CI, first look).")] = False,
    ) -> None:
        """Run a module's quick start end to end; the last line printed is a JSON summary."""
        from astrocyte_lab.quickstart import quickstart as find_quickstart

        try:
            summary = find_quickstart(module)(workspace_of(workspace).path, fast=fast,
                                              log=lambda text: print(text, file=sys.stderr))
        except AstrocyteError as exc:
            raise fail(exc) from exc
        typer.echo(json.dumps(summary))


@models_app.command("list")
def models_list(workspace: WorkspaceOption = None) -> None:
    """Trained models with module, input size, categories, creation time, duration and metrics."""
    infos, broken = workspace_of(workspace).model_listing()
    for info in infos:
        typer.echo(f"{info.name:28} {info.module:15} {info.architecture:22} {info.width}x{info.height}x{info.channels} "
                   f"{info.created}  {info.duration_s:7.1f} s  {json.dumps(info.performance)}")
    report_broken(broken)


@models_app.command("info")
def models_info(name: str, workspace: WorkspaceOption = None) -> None:
    """Details of a model: hyper parameters, augmentations, categories, metrics, history."""
    try:
        typer.echo(json.dumps(workspace_of(workspace).model_store.record(name), indent=1))
    except AstrocyteError as exc:
        raise fail(exc) from exc


@models_app.command("rename")
def models_rename(old: str, new: str, workspace: WorkspaceOption = None) -> None:
    try:
        workspace_of(workspace).rename_model(old, new)
    except AstrocyteError as exc:
        raise fail(exc) from exc


@models_app.command("delete")
def models_delete(name: str, workspace: WorkspaceOption = None) -> None:
    try:
        workspace_of(workspace).delete_model(name)
    except AstrocyteError as exc:
        raise fail(exc) from exc


@models_app.command("export")
def models_export(name: str, output: Path, workspace: WorkspaceOption = None) -> None:
    """Export the trained model (for another workspace; not the deployable package)."""
    try:
        typer.echo(str(workspace_of(workspace).export_model(name, output)))
    except AstrocyteError as exc:
        raise fail(exc) from exc


@models_app.command("import")
def models_import(file: Path, name: Annotated[str | None, typer.Option()] = None,
                  workspace: WorkspaceOption = None) -> None:
    try:
        typer.echo(workspace_of(workspace).import_model(file, name))
    except AstrocyteError as exc:
        raise fail(exc) from exc
