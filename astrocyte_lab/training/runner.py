"""What every module's training entry point shares: the background job around it and the dataset check."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from astrocyte_lab.data.dataset import Dataset
from astrocyte_lab.data.workspace import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.training.data import InputSpec
from astrocyte_lab.training.jobs import Job, JobContext

TrainFn = Callable[[Workspace, str, str, object, str, JobContext], str]


def start_training(train: TrainFn, workspace: Workspace, dataset: str, model_name: str, config: object,
                   description: str = "") -> Job:
    """Run ``train(...)`` as a background job named after the model; refuse a name already in use up front."""
    if workspace.model_store.exists(model_name):
        raise AstrocyteError(f"a trained model named {model_name!r} already exists: choose another name")
    return Job(f"train {model_name}", lambda ctx: train(workspace, dataset, model_name, config, description, ctx),
               workspace=workspace)


def open_dataset(workspace: Workspace, name: str, module: str) -> Dataset:
    """The dataset to train on, checked to belong to ``module``."""
    dataset = workspace.dataset(name)
    if dataset.module != module:
        raise AstrocyteError(f"dataset {name!r} is a {dataset.module} dataset, not {module}")
    return dataset


def inline_context() -> JobContext:
    """A context for calling a module's ``train`` directly (scripts), outside any job."""
    return JobContext(Job("inline", lambda ctx: None, start=False))


def stored_model(workspace: Workspace, name: str, module: str) -> tuple[dict, InputSpec, dict[str, np.ndarray]]:
    """A trained model's record, input spec and tensors, checked to belong to ``module``."""
    store = workspace.model_store
    record = store.record(name)
    if record["module"] != module:
        raise AstrocyteError(f"model {name!r} is a {record['module']} model, not {module}")
    return record, InputSpec.from_record(record["input"], store.roi_mask(name)), store.tensors(name)


def torch_state(tensors: dict[str, np.ndarray], skip_prefix: str | None = None) -> dict[str, torch.Tensor]:
    """Network weights from stored arrays, leaving out extras stored under ``skip_prefix``."""
    return {k: torch.from_numpy(v) for k, v in tensors.items() if not (skip_prefix and k.startswith(skip_prefix))}
