"""Turn source files into stored pixels: probe, choose the dataset's size/channels/depth, decode, correct.

This is the manual's "Generate": every kept image lands in one new immutable pixel batch (and masks
in a mask batch), and a report lists each file left out or changed, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from astrocyte_lab.data import imageio
from astrocyte_lab.data.correction import (
    check_correction,
    correct,
    correction_transform,
    fit_within,
    majority,
    resize,
)
from astrocyte_lab.data.sources import SourceImage
from astrocyte_lab.data.store import SHARD_ITEMS, DatasetStore, storage_error
from astrocyte_lab.errors import AstrocyteError, EmptySourceError, ImageReadError

ProgressCallback = Callable[[int, int], None]
WRITE_BLOCK = SHARD_ITEMS  # images decoded and written together: whole shards, bounded memory


@dataclass
class GenerationOptions:
    """How sources become dataset images.

    ``max_size = (w, h)`` shrinks larger images to fit (``None`` keeps the original size).
    Images whose size differs from the majority get ``correction`` (exclude, resize,
    resize_keep_aspect, crop) unless ``corrections`` names another method for that file
    (key: source path or file name).
    """

    max_size: tuple[int, int] | None = None
    correction: str = "exclude"
    corrections: dict[str, str] = field(default_factory=dict)
    workers: int = 2

    def __post_init__(self) -> None:
        check_correction(self.correction, "GenerationOptions.correction")
        for key, method in self.corrections.items():
            check_correction(method, f"GenerationOptions.corrections[{key!r}]")
        if self.max_size is not None:
            self.max_size = (int(self.max_size[0]), int(self.max_size[1]))
            fit_within((1, 1), self.max_size)  # validates positivity

    def method_for(self, path: Path) -> str:
        """The correction for one file: keyed by its path (as written, relative or ``~``), then its name."""
        if str(path) in self.corrections:
            return self.corrections[str(path)]
        resolved = path.resolve()
        for key, method in self.corrections.items():
            if Path(key).expanduser().resolve() == resolved:
                return method
        return self.corrections.get(path.name, self.correction)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenerationReport:
    """What a generation did with each file that was not simply added."""

    added: int = 0
    width: int = 0
    height: int = 0
    channels: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    corrected: list[tuple[str, str]] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GenerationReport:
        lists = ("skipped", "corrected", "excluded", "converted")
        return cls(**{k: [tuple(row) for row in v] if k in lists else v for k, v in data.items()})

    def summary(self) -> str:
        lines = [f"added {self.added} images of {self.width} x {self.height} x {self.channels}"]
        for title, rows in (("skipped", self.skipped), ("excluded", self.excluded),
                            ("corrected", self.corrected), ("converted", self.converted)):
            if rows:
                lines.append(f"{title} {len(rows)}:")
                lines += [f"  {path}: {reason}" for path, reason in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))


@dataclass(frozen=True)
class ImageGeometry:
    """The fixed size, channels and container type shared by every image of a dataset."""

    width: int
    height: int
    channels: int
    dtype: str  # "uint8" or "uint16"


@dataclass
class Generated:
    """Rows produced by one generation, in the order of ``sources``."""

    geometry: ImageGeometry
    sources: list[SourceImage]
    pixel_batch: str
    pixel_slots: list[int]
    source_sizes: list[tuple[int, int]]
    corrections: list[str]
    bit_depth: int
    mask_batch: str = ""
    mask_slots: list[int] = field(default_factory=list)
    mask_values: list[int] = field(default_factory=list)  # distinct raw mask values seen, sorted
    report: GenerationReport = field(default_factory=GenerationReport)

    def transforms(self) -> list[tuple[float, float, float, float]]:
        """Per image, the map from source pixel coordinates to stored pixel coordinates."""
        size = (self.geometry.width, self.geometry.height)
        return [correction_transform(src, size, method) for src, method in zip(self.source_sizes, self.corrections,
                                                                                 strict=True)]


def generate(store: DatasetStore, sources: list[SourceImage], options: GenerationOptions,
             geometry: ImageGeometry | None = None, binary_masks: bool = False,
             on_progress: ProgressCallback | None = None) -> Generated:
    """Decode ``sources`` into a new pixel batch of ``store``.

    ``geometry`` fixes the size when adding to an existing dataset; otherwise the majority size
    (fitted into ``options.max_size``), the majority channel count and the widest depth are chosen.
    """
    report = GenerationReport()
    infos = _probe_all(sources, options.workers, report)
    if not infos:
        raise EmptySourceError("no readable image among the sources:\n" + "\n".join(
            f"  {path}: {reason}" for path, reason in report.skipped))
    if geometry is None:
        geometry = _choose_geometry(infos, options)
    plan = _plan(infos, geometry, options, appending=geometry is not None, report=report)
    if not plan:
        raise EmptySourceError("every image was excluded by image correction; choose a correction "
                               "(resize, resize_keep_aspect, crop) for differing images")
    dtype = np.dtype(geometry.dtype)
    shape = (geometry.height, geometry.width, geometry.channels)
    pixel_batch, pixels = store.new_batch("pixels", len(plan), shape, dtype)
    with_masks = any(src.mask_path for src, _, _ in plan)
    mask_batch, masks = ("", None)
    mask_dtype = np.uint8 if binary_masks else np.uint16
    if with_masks:
        mask_batch, masks = store.new_batch("masks", len(plan), shape[:2], mask_dtype)
    kept: list[tuple[SourceImage, imageio.ImageInfo, str, int]] = []
    mask_values: set[int] = set()
    bit_depth = 8
    done = 0
    # Decoding (threads, OpenCV releases the GIL) overlaps with writing the previous block.
    with ThreadPoolExecutor(max(1, options.workers)) as pool, ThreadPoolExecutor(1) as writer:
        writing = None
        for block_start, block in _blocks(plan, WRITE_BLOCK):
            decoded = list(pool.map(lambda item: _decode(item, geometry, binary_masks), block))
            image_stack = np.zeros((len(block), *shape), dtype=dtype)
            mask_stack = np.zeros((len(block), *shape[:2]), dtype=mask_dtype) if masks is not None else None
            for offset, (item, result) in enumerate(zip(block, decoded, strict=True)):
                source, info, method = item
                if isinstance(result, str):
                    report.skipped.append((str(source.path), result))
                    continue
                image, mask, converted = result
                image_stack[offset] = image
                if converted:
                    report.converted.append((str(source.path), converted))
                if mask is not None and mask_stack is not None:
                    mask_stack[offset] = mask
                    mask_values |= {int(v) for v in np.unique(mask)}
                bit_depth = max(bit_depth, imageio.significant_bits(image))
                kept.append((source, info, method, block_start + offset))
            if writing is not None:
                _finish(writing, store)
            writing = writer.submit(_write_block, pixels, masks, block_start, image_stack, mask_stack)
            done += len(block)
            if on_progress:
                on_progress(done, len(plan))
        if writing is not None:
            _finish(writing, store)
    if not kept:
        raise EmptySourceError("no image could be decoded:\n" + report.summary())
    report.added = len(kept)
    report.width, report.height, report.channels = geometry.width, geometry.height, geometry.channels
    return Generated(
        geometry=geometry, sources=[k[0] for k in kept], pixel_batch=pixel_batch,
        pixel_slots=[k[3] for k in kept], source_sizes=[(k[1].width, k[1].height) for k in kept],
        corrections=[k[2] for k in kept], bit_depth=bit_depth, mask_batch=mask_batch,
        mask_slots=[k[3] if k[0].mask_path else -1 for k in kept], mask_values=sorted(mask_values),
        report=report)


def _probe_all(sources: list[SourceImage], workers: int,
               report: GenerationReport) -> list[tuple[SourceImage, imageio.ImageInfo]]:
    def probe(source: SourceImage) -> imageio.ImageInfo | str:
        try:
            return imageio.probe(source.path)
        except ImageReadError as exc:
            return _reason(exc, source.path)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(probe, sources))
    good = []
    for source, info in zip(sources, results, strict=True):
        if isinstance(info, str):
            report.skipped.append((str(source.path), info))
        else:
            good.append((source, info))
    return good


def _choose_geometry(infos: list[tuple[SourceImage, imageio.ImageInfo]],
                     options: GenerationOptions) -> ImageGeometry:
    size = majority([(info.width, info.height) for _, info in infos])
    width, height = fit_within(size, options.max_size)  # type: ignore[arg-type]
    channels = majority([info.channels for _, info in infos])
    dtype = "uint16" if any(info.bit_depth == 16 for _, info in infos) else "uint8"
    return ImageGeometry(width, height, int(channels), dtype)  # type: ignore[arg-type]


def _plan(infos: list[tuple[SourceImage, imageio.ImageInfo]], geometry: ImageGeometry,
          options: GenerationOptions, appending: bool,
          report: GenerationReport) -> list[tuple[SourceImage, imageio.ImageInfo, str]]:
    """Pick the operation for each image: plain resize, a correction, or exclusion."""
    majority_size = majority([(info.width, info.height) for _, info in infos])
    rescaling = options.max_size is not None or appending
    plan = []
    for source, info in infos:
        same_aspect = abs(info.width * geometry.height - info.height * geometry.width) <= max(
            info.width, info.height) * 0.01 * max(geometry.width, geometry.height)
        if (info.width, info.height) == majority_size and not appending or (rescaling and same_aspect):
            plan.append((source, info, ""))
            continue
        method = options.method_for(source.path)
        if method == "exclude":
            report.excluded.append((str(source.path), f"size {info.width} x {info.height} differs from "
                                    f"{geometry.width} x {geometry.height}; no image correction chosen"))
            continue
        report.corrected.append((str(source.path), f"{method} from {info.width} x {info.height}"))
        plan.append((source, info, method))
    return plan


def _decode(item: tuple[SourceImage, imageio.ImageInfo, str], geometry: ImageGeometry,
            binary_masks: bool) -> tuple[np.ndarray, np.ndarray | None, str] | str:
    """Decode and fit one image (and its mask); return a reason string when the file is unusable."""
    source, info, method = item
    size = (geometry.width, geometry.height)
    try:
        # Always the full-size decode (no reduced JPEG decoding): a deployed package gets full-size camera pixels
        # and can repeat the resize below exactly, not a decoder's DCT-domain shrink.
        image = imageio.read_image(source.path, grey=info.channels == 1)
        converted = ""
        if image.shape[2] != geometry.channels:
            converted = f"{image.shape[2]} -> {geometry.channels} channel(s)"
            image = imageio.convert_channels(image, geometry.channels)
        image = imageio.convert_depth(image, np.dtype(geometry.dtype))
        image = correct(image, size, method) if method else resize(image, size)
        mask = None
        if source.mask_path is not None:
            raw = imageio.read_mask(source.mask_path)
            if (raw.shape[1], raw.shape[0]) != (info.width, info.height):
                return (f"mask {source.mask_path} is {raw.shape[1]} x {raw.shape[0]}, image is "
                        f"{info.width} x {info.height}")
            raw = (raw > 0).astype(np.uint8) if binary_masks else raw.astype(np.uint16)
            mask = correct(raw, size, method, nearest=True) if method else resize(raw, size, nearest=True)
    except ImageReadError as exc:
        return _reason(exc, source.path)
    return image, mask, converted


def _write_block(pixels, masks, start: int, images: np.ndarray, mask_stack: np.ndarray | None) -> None:
    pixels[start:start + len(images)] = images
    if masks is not None and mask_stack is not None:
        masks[start:start + len(mask_stack)] = mask_stack


def _finish(writing: Future, store: DatasetStore) -> None:
    """Wait for a block write; a full disk or a permission error becomes a StorageError."""
    try:
        writing.result()
    except OSError as exc:
        raise storage_error(exc, store.root) from exc


def _reason(exc: Exception, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _blocks(items: list, size: int) -> Iterator[tuple[int, list]]:
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


def check_geometry_match(a: ImageGeometry, b: ImageGeometry, what: str) -> None:
    if (a.width, a.height, a.channels) != (b.width, b.height, b.channels):
        raise AstrocyteError(f"{what}: image size {b.width} x {b.height} x {b.channels} differs from "
                             f"{a.width} x {a.height} x {a.channels}")
