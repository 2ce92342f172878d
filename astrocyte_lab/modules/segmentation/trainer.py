"""Train a segmentation network on a dataset's masks and store it in the workspace (as a background job)."""

from __future__ import annotations

import datetime as _dt
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.segmentation import postprocess
from astrocyte_lab.modules.segmentation.config import SegmentationConfig
from astrocyte_lab.modules.segmentation.model import SegmentationNet
from astrocyte_lab.modules.segmentation.registry import SEGMENTATION_ARCHITECTURES
from astrocyte_lab.runtime.preprocess import crop_image, resize_nearest, to_unit_range
from astrocyte_lab.training.augment import build_pipeline
from astrocyte_lab.training.data import InputSpec, input_spec, seed_everything
from astrocyte_lab.training.devices import resolve_device
from astrocyte_lab.training.jobs import Job, JobContext
from astrocyte_lab.training.loop import fit
from astrocyte_lab.training.runner import inline_context, open_dataset, start_training, stored_model, torch_state

IGNORE = 255  # label of pixels outside the ROI: they take no part in the loss


class MaskDataset(TorchDataset):
    """Images with their category masks at network resolution (or random full-resolution tiles)."""

    def __init__(self, dataset: Dataset, ids: list[int], spec: InputSpec, augment=None,
                 tiles: tuple[tuple[int, int], int] | None = None, seed: int = 0) -> None:
        self.dataset, self.ids, self.spec, self.augment, self.tiles = dataset, ids, spec, augment, tiles
        self.images = {i: dataset.image(i) for i in ids}
        self.masks = {i: _mask_or_background(dataset, i) for i in ids}
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.ids) * (self.tiles[1] if self.tiles else 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_id = self.ids[index % len(self.ids)]
        spec = self.spec
        image, mask = self.images[image_id], self.masks[image_id].astype(np.int64)
        if spec.crop is not None:
            image, mask = crop_image(image, spec.crop), mask[spec.crop[1]:spec.crop[1] + spec.crop[3],
                                                             spec.crop[0]:spec.crop[0] + spec.crop[2]]
        if spec.roi_mask is not None:
            mask = np.where(spec.roi_mask, mask, IGNORE)
        unit = to_unit_range(image if image.ndim == 3 else image[:, :, None], spec.bit_depth)
        if self.tiles is not None:
            unit, mask = _random_tile(unit, mask, self.tiles[0], self.rng)
        if self.augment is not None:
            out = self.augment(image=unit, mask=mask.astype(np.int32))
            unit, mask = out["image"], out["mask"].astype(np.int64)
        elif (unit.shape[1], unit.shape[0]) != spec.size:
            from astrocyte_lab.runtime.preprocess import resize_bilinear

            unit = resize_bilinear(unit, spec.width, spec.height)
            mask = resize_nearest(mask, spec.width, spec.height)
        if unit.ndim == 2:
            unit = unit[:, :, None]
        normalised = (unit - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32))
        return tensor, torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))


def _mask_or_background(dataset: Dataset, image_id: int) -> np.ndarray:
    mask = dataset.mask(image_id)
    if mask is None:  # an image without a mask counts as all background
        g = dataset.geometry
        return np.zeros((g.height, g.width), np.uint8)
    return mask


def _random_tile(unit: np.ndarray, mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator):
    width, height = size
    pad_h, pad_w = max(0, height - unit.shape[0]), max(0, width - unit.shape[1])
    if pad_h or pad_w:
        fill = unit.mean(axis=(0, 1))
        padded = np.empty((unit.shape[0] + pad_h, unit.shape[1] + pad_w, unit.shape[2]), np.float32)
        padded[...] = fill
        padded[:unit.shape[0], :unit.shape[1]] = unit
        unit = padded
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    y = int(rng.integers(0, unit.shape[0] - height + 1))
    x = int(rng.integers(0, unit.shape[1] - width + 1))
    return unit[y:y + height, x:x + width], mask[y:y + height, x:x + width]


def train_job(workspace: Workspace, dataset: str, model_name: str, config: SegmentationConfig | None = None,
              description: str = "") -> Job:
    """Start training in the background; ``job.result()`` is the model's name once it is saved."""
    return start_training(train, workspace, dataset, model_name, config or SegmentationConfig(), description)


def train(workspace: Workspace, dataset_name: str, model_name: str, config: SegmentationConfig,
          description: str = "", context: JobContext | None = None) -> str:
    context = context or inline_context()
    started = time.perf_counter()
    dataset = open_dataset(workspace, dataset_name, "segmentation")
    categories = dataset.categories
    if len(categories) < 2:
        raise AstrocyteError(f"dataset {dataset_name!r} has {len(categories)} category: segmentation needs a "
                             "background and at least one object category")
    table = dataset.table
    train_ids = table.index[table["assigned"] == "train"].tolist()
    val_ids = table.index[table["assigned"] == "validation"].tolist() or train_ids
    if not train_ids:
        raise AstrocyteError(f"dataset {dataset_name!r} has no training image")
    seed = seed_everything(config.seed)
    device = resolve_device(config.device)
    arch = SEGMENTATION_ARCHITECTURES[config.architecture]
    spec = input_spec(dataset, config, arch.mean, arch.std)
    if config.tiling:
        spec.width, spec.height = config.tile_size
    net = SegmentationNet(config.architecture, len(categories), pretrained=config.pretrained)
    if config.resume_from:
        state = torch_state(workspace.model_store.tensors(config.resume_from))
        net.load_state_dict(state, strict=False)
    if config.fast_training:
        for p in net.net.encoder.parameters():
            p.requires_grad_(False)
    net.to(device)
    augment = build_pipeline(config.augmentation, None if config.tiling else spec.size, spec.channels, seed=seed)
    tiles = (config.tile_size, config.tiles_per_image) if config.tiling else None
    train_set = MaskDataset(dataset, train_ids, spec, augment, tiles, seed)
    val_set = MaskDataset(dataset, val_ids, spec, None, (config.tile_size, 2) if config.tiling else None, seed + 1)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, num_workers=config.workers,
                        drop_last=len(train_set) > config.batch_size, generator=torch.Generator().manual_seed(seed))
    val_loader = DataLoader(val_set, batch_size=config.batch_size, num_workers=config.workers)
    criterion = _loss(config, train_set, len(categories), device)

    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        images, masks = batch
        return criterion(model(images.to(device)), masks.to(device))

    @torch.no_grad()
    def evaluate(model: nn.Module) -> dict[str, float]:
        model.eval()
        matrix = np.zeros((len(categories), len(categories)), np.int64)
        losses = []
        for images, masks in val_loader:
            logits = model(images.to(device))
            losses.append(float(criterion(logits, masks.to(device))))
            predicted = logits.argmax(1).cpu().numpy()
            truth = masks.numpy()
            matrix += postprocess.confusion(truth, predicted, len(categories), truth != IGNORE)
        ious = postprocess.iou_per_class(matrix)
        miou = postprocess.mean_iou(ious)
        return {"val_loss": float(np.mean(losses)), "val_mean_iou": miou, "val_iou_gap": 1.0 - miou,
                "val_accuracy": postprocess.pixel_accuracy(matrix)}

    context.emit("status", message=f"training {config.architecture} on {len(train_ids)} images ({len(val_ids)} "
                                   f"for validation) at {spec.width} x {spec.height}"
                                   f"{' tiles' if config.tiling else ''} on {device}")
    result = fit(net, loader, loss_fn, evaluate, config, context, device, monitor="val_iou_gap")
    best = result.history[result.best_epoch - 1] if result.best_epoch else result.history[-1]
    record = {
        "name": model_name, "module": "segmentation", "architecture": config.architecture, "categories": categories,
        "input": spec.to_record(), "config": config.to_dict(),
        "metrics": {"val_mean_iou": best["val_mean_iou"], "val_accuracy": best["val_accuracy"],
                    "val_loss": best["val_loss"]},
        "history": result.history, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
        "dataset": dataset_name, "images": {"train": len(train_ids), "validation": len(val_ids)}, "seed": seed,
        "pretrained": bool(net.pretrained_loaded), "device": str(device), "description": description,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 2),
        "segmentation": {"background": _background(categories),
                         "colours": postprocess.palette(len(categories)).tolist(),
                         "tiling": {"tile": list(config.tile_size), "overlap": config.tile_overlap}
                         if config.tiling else None},
    }
    tensors = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    workspace.model_store.save(model_name, record, tensors, spec.roi_mask)
    context.emit("status", message=f"saved model {model_name!r}: validation mean IoU {best['val_mean_iou']:.3f}")
    return model_name


def _background(categories: list[str]) -> int:
    return categories.index("background") if "background" in categories else 0


def _loss(config: SegmentationConfig, train_set: MaskDataset, classes: int, device: torch.device):
    if config.class_imbalance == "dice_focal":
        import segmentation_models_pytorch as smp

        dice = smp.losses.DiceLoss("multiclass", ignore_index=IGNORE)
        focal = smp.losses.FocalLoss("multiclass", ignore_index=IGNORE)
        return lambda logits, target: dice(logits, target) + focal(logits, target)
    weight = None
    if config.class_imbalance == "weighted":
        counts = np.zeros(classes, np.float64)
        for mask in train_set.masks.values():
            counts += np.bincount(mask.reshape(-1).astype(np.int64), minlength=classes)[:classes]
        freq = counts / max(counts.sum(), 1)
        raw = 1.0 / np.sqrt(np.maximum(freq, 1e-6))
        weight = torch.tensor(np.clip(raw / raw[freq > 0].min(), 1.0, 50.0), dtype=torch.float32, device=device)
    return nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE)


def load_network(workspace: Workspace, model_name: str) -> tuple[SegmentationNet, dict, InputSpec]:
    """A stored model as a PyTorch module (eval mode), its record and its input spec."""
    record, spec, tensors = stored_model(workspace, model_name, "segmentation")
    net = SegmentationNet(record["architecture"], len(record["categories"]), pretrained=False)
    net.load_state_dict(torch_state(tensors))
    return net.eval(), record, spec
