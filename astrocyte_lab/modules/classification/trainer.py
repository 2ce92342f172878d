"""Train a classifier on a dataset and store it in the workspace (as a job that does not block the kernel)."""

from __future__ import annotations

import datetime as _dt
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.classification import postprocess
from astrocyte_lab.modules.classification.config import ClassificationConfig
from astrocyte_lab.modules.classification.model import ClassifierNet
from astrocyte_lab.modules.classification.registry import ARCHITECTURES
from astrocyte_lab.training.augment import build_pipeline
from astrocyte_lab.training.data import ImageDataset, InputSpec, input_spec, seed_everything
from astrocyte_lab.training.devices import resolve_device
from astrocyte_lab.training.jobs import Job, JobContext
from astrocyte_lab.training.loop import fit
from astrocyte_lab.training.runner import inline_context, open_dataset, start_training, stored_model, torch_state


def train_job(workspace: Workspace, dataset: str, model_name: str, config: ClassificationConfig | None = None,
              description: str = "") -> Job:
    """Start training in the background; ``job.result()`` is the model's name once it is saved."""
    return start_training(train, workspace, dataset, model_name, config or ClassificationConfig(), description)


def train(workspace: Workspace, dataset_name: str, model_name: str, config: ClassificationConfig,
          description: str = "", context: JobContext | None = None) -> str:
    """Train, validate, and save ``model_name``; returns its name. Prefer :func:`train_job` in notebooks."""
    context = context or inline_context()
    started = time.perf_counter()
    dataset = open_dataset(workspace, dataset_name, "classification")
    categories = dataset.categories
    table = dataset.table
    labelled = table[table["ground_truth"] != ""]
    if labelled.empty:
        raise AstrocyteError(f"dataset {dataset_name!r} has no labelled image")
    present = sorted(set(labelled["ground_truth"]), key=categories.index)
    if len(present) < 2 and not config.continual:
        raise AstrocyteError(f"dataset {dataset_name!r} has only one labelled category ({present}): a classifier "
                             "needs at least two")
    index = {name: i for i, name in enumerate(present)}
    train_rows = labelled[labelled["assigned"] == "train"]
    val_rows = labelled[labelled["assigned"] == "validation"]
    if val_rows.empty:
        context.emit("status", message="no validation image: validating on the training images")
        val_rows = train_rows
    seed = seed_everything(config.seed)
    device = resolve_device(config.device)
    arch = ARCHITECTURES[config.architecture]
    spec = input_spec(dataset, config, arch.mean, arch.std)
    net = _initial_network(workspace, config, len(present), spec.channels)
    if config.fast_training:
        for p in net.backbone.parameters():
            p.requires_grad_(False)
    net.to(device)

    pipeline = build_pipeline(config.augmentation, spec.size, spec.channels, seed=seed)
    train_set = ImageDataset(dataset, train_rows.index.tolist(), [index[c] for c in train_rows["ground_truth"]],
                             spec, pipeline)
    val_set = ImageDataset(dataset, val_rows.index.tolist(), [index[c] for c in val_rows["ground_truth"]], spec)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=len(train_set) >
                              config.batch_size, num_workers=config.workers, generator=generator)
    val_loader = DataLoader(val_set, batch_size=config.batch_size, num_workers=config.workers)
    weights = _class_weights([index[c] for c in train_rows["ground_truth"]], len(present)).to(device)
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)

    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        images, labels = batch
        return criterion(model(images.to(device)), labels.to(device))

    def evaluate(model: nn.Module) -> dict[str, float]:
        logits, labels = predict_loader(model, val_loader, device)
        loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
        return {"val_loss": loss, "val_accuracy": float((logits.argmax(1) == labels).mean())}

    context.emit("status", message=f"training {config.architecture} on {len(train_set)} images "
                                   f"({len(val_set)} for validation) at {spec.width} x {spec.height} on {device}")
    result = fit(net, train_loader, loss_fn, evaluate, config, context, device)
    metrics = result.history[result.best_epoch - 1] if result.best_epoch else result.history[-1]
    tensors = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    continual = None
    if config.continual:
        continual, extra = _continual_head(net, train_set, val_set, device, len(present), config)
        tensors.update(extra)
    record = {
        "name": model_name, "module": "classification", "architecture": config.architecture,
        "categories": present, "input": spec.to_record(), "config": config.to_dict(),
        "metrics": {"val_accuracy": metrics["val_accuracy"], "val_loss": metrics["val_loss"]},
        "history": result.history, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
        "dataset": dataset_name, "images": {"train": len(train_set), "validation": len(val_set)}, "seed": seed,
        "pretrained": bool(net.pretrained_loaded), "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 2), "description": description, "continual": continual,
        "device": str(device),
    }
    workspace.model_store.save(model_name, record, tensors, spec.roi_mask)
    context.emit("status", message=f"saved model {model_name!r}: validation accuracy {metrics['val_accuracy']:.3f}")
    return model_name


def _initial_network(workspace: Workspace, config: ClassificationConfig, classes: int, channels: int) -> ClassifierNet:
    if config.resume_from is None:
        return ClassifierNet(config.architecture, classes, channels, pretrained=config.pretrained)
    record = workspace.model_store.record(config.resume_from)
    if record["architecture"] != config.architecture:
        raise AstrocyteError(f"cannot resume from {config.resume_from!r}: it is a {record['architecture']}, "
                             f"not a {config.architecture}")
    net = ClassifierNet(config.architecture, classes, channels, pretrained=False)
    state = torch_state(workspace.model_store.tensors(config.resume_from), "continual.")
    if state["head.weight"].shape[0] != classes:  # other categories: keep the backbone, new head
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    net.load_state_dict(state, strict=False)
    return net


def _class_weights(labels: list[int], classes: int) -> torch.Tensor:
    """Inverse-frequency weights so a rare category still counts (capped to avoid extreme values)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes).astype(np.float32)
    weights = counts.sum() / np.maximum(counts, 1) / classes
    return torch.from_numpy(np.clip(weights, 0.2, 5.0).astype(np.float32))


@torch.no_grad()
def predict_loader(model: nn.Module, loader: DataLoader, device: torch.device,
                   embeddings: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Logits (or embeddings) and labels for every batch of ``loader``, model in eval mode."""
    model.eval()
    outputs, labels = [], []
    for images, batch_labels in loader:
        images = images.to(device)
        out = model.embed(images) if embeddings else model(images)
        outputs.append(out.float().cpu().numpy())
        labels.append(np.asarray(batch_labels))
    return np.concatenate(outputs), np.concatenate(labels)


def _continual_head(net: ClassifierNet, train_set: ImageDataset, val_set: ImageDataset, device: torch.device,
                    classes: int, config: ClassificationConfig) -> tuple[dict, dict[str, np.ndarray]]:
    """Prototypes from the training images' embeddings and the "Undefined" threshold."""
    plain = ImageDataset(train_set.dataset, train_set.ids, train_set.labels, train_set.spec)
    embeddings, labels = predict_loader(net, DataLoader(plain, batch_size=config.batch_size), device, True)
    prototypes, counts = postprocess.prototypes_from(embeddings, labels, classes)
    val_embeddings, val_labels = predict_loader(net, DataLoader(val_set, batch_size=config.batch_size), device, True)
    sims = postprocess.similarities(np.concatenate([embeddings, val_embeddings]), prototypes)
    threshold = postprocess.undefined_threshold(sims, np.concatenate([labels, val_labels]), config.undefined_margin)
    info = {"threshold": threshold, "counts": counts.tolist(), "max_classes": config.max_classes,
            "metric": "cosine", "temperature": postprocess.DEFAULT_TEMPERATURE,
            "undefined_label": postprocess.UNDEFINED}
    return info, {"continual.prototypes": prototypes, "continual.counts": counts.astype(np.float32)}


def load_network(workspace: Workspace, model_name: str) -> tuple[ClassifierNet, dict, InputSpec]:
    """A stored model as a PyTorch module (eval mode), its record and its input spec."""
    record, spec, tensors = stored_model(workspace, model_name, "classification")
    net = ClassifierNet(record["architecture"], len(record["categories"]), spec.channels, pretrained=False)
    net.load_state_dict(torch_state(tensors, "continual."))
    return net.eval(), record, spec
