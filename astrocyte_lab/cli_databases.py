"""``astrocyte-lab datasets add-database`` / ``preview-text``: annotation databases from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from astrocyte_lab.cli_common import WorkspaceOption, fail, workspace_of
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.formats.registry import build_database

FormatOption = Annotated[str, typer.Option("--format", "-f", help="voc, coco, kitti, yolo or text.")]
AnnotationsOption = Annotated[Path, typer.Option(
    help="VOC/KITTI/YOLO label folder, COCO json file, or text file / folder of per-image text files.")]
ImagesOption = Annotated[Path, typer.Option(help="Image folder the annotations refer to.")]
MasksOption = Annotated[Path | None, typer.Option(help="Pixel-value mask folder (segmentation databases).")]
NamesOption = Annotated[Path | None, typer.Option(help="YOLO class-names file (names.txt or data.yaml).")]
ColumnsOption = Annotated[str, typer.Option(
    help="Text: comma-separated column roles, e.g. class,x1,y1,x2,y2 (image, class, x, y, width, height, top, "
         "bottom, left, right, x1, y1, x2, y2, cx, cy, angle, unassigned).")]
SeparatorOption = Annotated[str, typer.Option(help="Text: tab, space, comma or semicolon.")]
PerImageOption = Annotated[bool, typer.Option("--per-image/--global", help="Text: one file per image, or one file.")]
ClassByOption = Annotated[str, typer.Option(help="Text: classes given by name or by index.")]
IndexFileOption = Annotated[Path | None, typer.Option(help="Text: class names, one a line, for --class-by index.")]
IndexBaseOption = Annotated[int, typer.Option(help="Text: the index of the first class in the index file.")]
TargetOption = Annotated[str, typer.Option(help="Text: box, or image for whole-image labels.")]
BoxFormatOption = Annotated[str, typer.Option(help="Text: xyxy, xywh, tblr or cxcywh.")]
SkipHeaderOption = Annotated[int, typer.Option(help="Text: lines to skip at the top of each file.")]
PairsOption = Annotated[Path | None, typer.Option(help="Text: list file of 'image label' path pairs.")]
StemSuffixOption = Annotated[str, typer.Option(help="Text: suffix of image stems, e.g. _test for DeepPCB.")]
SkipMissingOption = Annotated[bool, typer.Option(help="Skip (with a warning) images the database lists but lacks.")]


def object_counts(dataset) -> dict[str, int]:
    """Ground-truth objects per category across the dataset."""
    counts: dict[str, int] = {}
    for image_id in dataset.ids.tolist():
        for obj in dataset.objects(image_id, pseudo=False):
            counts[obj.category] = counts.get(obj.category, 0) + 1
    return counts




def register(datasets_app: typer.Typer) -> None:
    """Add the database commands to the ``datasets`` group."""

    @datasets_app.command("add-database")
    def add_database(
        name: Annotated[str, typer.Argument(help="Dataset to create, or to add the database's images to.")],
        format: FormatOption,
        annotations: AnnotationsOption,
        images: ImagesOption,
        module: Annotated[str, typer.Option(help="detection or segmentation (new datasets).")] = "detection",
        set_name: Annotated[str, typer.Option(help="Name of the database set in the dataset.")] = "database",
        masks: MasksOption = None, names: NamesOption = None, columns: ColumnsOption = "",
        separator: SeparatorOption = "tab", per_image: PerImageOption = True, class_by: ClassByOption = "name",
        index_file: IndexFileOption = None, index_base: IndexBaseOption = 0, target: TargetOption = "box",
        box_format: BoxFormatOption = "xyxy", skip_header: SkipHeaderOption = 0, pairs: PairsOption = None,
        image_stem_suffix: StemSuffixOption = "", skip_missing_images: SkipMissingOption = False,
        workspace: WorkspaceOption = None,
    ) -> None:
        """Create a dataset from an annotation database, or add a database set to an existing dataset."""
        from astrocyte_lab.data.sources import DatabaseSet

        try:
            database = build_database(format, annotations, images, masks, names, columns, separator, per_image,
                                      class_by, index_file, index_base, target, box_format, skip_header, pairs,
                                      image_stem_suffix, skip_missing_images)
            ws = workspace_of(workspace)
            sets = [DatabaseSet(set_name, database)]
            if name in ws.dataset_names():
                dataset = ws.dataset(name)
                report = dataset.add_images(sets)
                dataset.save()
            else:
                dataset = ws.create_dataset(name, module, sets)
                report = dataset.last_report
        except AstrocyteError as exc:
            raise fail(exc) from exc
        typer.echo(report.summary() if report else "")
        typer.echo(f"{dataset!r}\nobjects per category: {object_counts(dataset)}")

    @datasets_app.command("preview-text")
    def preview_text(
        annotations: AnnotationsOption, images: ImagesOption, columns: ColumnsOption,
        separator: SeparatorOption = "tab", per_image: PerImageOption = True, class_by: ClassByOption = "name",
        index_file: IndexFileOption = None, index_base: IndexBaseOption = 0, target: TargetOption = "box",
        box_format: BoxFormatOption = "xyxy", skip_header: SkipHeaderOption = 0, pairs: PairsOption = None,
        image_stem_suffix: StemSuffixOption = "",
        rows: Annotated[int, typer.Option(help="How many rows to show.")] = 10,
    ) -> None:
        """Show the first rows of a text database parsed under the chosen column roles."""
        from astrocyte_lab.formats import TextFormat, preview

        try:
            config = TextFormat(
                path=annotations, image_folder=images, columns=[c for c in columns.split(",") if c],
                per_image=per_image, separator=separator, class_by=class_by, index_file=index_file,  # type: ignore
                index_base=index_base, target=target, box_format=box_format,  # type: ignore
                skip_header_lines=skip_header, pairs=pairs, image_stem_suffix=image_stem_suffix)
            shown = preview(config, rows)
        except AstrocyteError as exc:
            raise fail(exc) from exc
        for row in shown:
            where = f"{Path(row['file']).name}:{row['line']}"
            values = row["values"] or {}
            cells = "  ".join(f"{role}={value}" for role, value in values.items()) or "  ".join(row["cells"])
            outcome = f"ERROR {row['error']}" if row["error"] else repr(row["object"])
            typer.echo(f"{where:24} {cells}\n{'':24} -> {outcome}")
