"""What auto train tunes for each module: one explicit table of search spaces.

While tuning, the advanced hyper parameters listed here are chosen by the search; every other field of the
module's config (batch size, region size, architecture, augmentation, seed, resume-from, ...) stays as the
user set it. Adding a module is one entry in :data:`SEARCH_SPACES`: the metric to maximise (a key of the
module's per-epoch ``epoch`` events and of the stored model's ``metrics``) and its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from astrocyte_lab.errors import AstrocyteError


@dataclass(frozen=True)
class Float:
    """A real-valued config field drawn in ``[low, high]`` (log scale with ``log``)."""

    name: str
    low: float
    high: float
    log: bool = False
    when: tuple[str, object] | None = None  # only drawn when another parameter has this value

    def suggest(self, trial: Any) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> dict:
        return {"name": self.name, "type": "float", "low": self.low, "high": self.high, "log": self.log,
                "when": list(self.when) if self.when else None}


@dataclass(frozen=True)
class Choice:
    """A config field drawn from a fixed list of values."""

    name: str
    choices: tuple
    when: tuple[str, object] | None = None

    def suggest(self, trial: Any) -> object:
        return trial.suggest_categorical(self.name, list(self.choices))

    def describe(self) -> dict:
        return {"name": self.name, "type": "choice", "choices": list(self.choices),
                "when": list(self.when) if self.when else None}


Param = Float | Choice


@dataclass(frozen=True)
class SearchSpace:
    """``metric`` is maximised; among equal values the lower ``tiebreak`` (a stored metric, "" for none) wins,
    then the earlier trial."""

    metric: str
    params: tuple[Param, ...]
    tiebreak: str = "val_loss"

    def sample(self, trial: Any) -> dict:
        values: dict = {}
        for param in self.params:
            if param.when is None or values.get(param.when[0]) == param.when[1]:
                values[param.name] = param.suggest(trial)
        return values

    def defaults(self, config: Any) -> dict:
        """The config's own values of the searched fields: the first trial reproduces the manual settings."""
        values: dict = {}
        for param in self.params:
            if param.when is None or values.get(param.when[0]) == param.when[1]:
                values[param.name] = getattr(config, param.name)
        return values

    def describe(self) -> dict:
        return {"metric": self.metric, "direction": "maximize", "tiebreak": self.tiebreak,
                "params": [p.describe() for p in self.params]}


# The manual's advanced set that auto train takes over (learning rate is a manual-tab setting, tuned here too).
OPTIMISATION: tuple[Param, ...] = (
    Float("learning_rate", 1e-5, 5e-2, log=True),
    Choice("optimizer", ("adam", "sgd")),
    Float("momentum", 0.8, 0.99, when=("optimizer", "sgd")),
    Float("weight_decay", 1e-6, 1e-2, log=True),
    Choice("scheduler", ("one_cycle", "cyclic", "exponential", "none")),
)

SEARCH_SPACES: dict[str, SearchSpace] = {
    # anomaly models are fitted in one pass (no learning rate): the search picks the algorithm and its settings
    "anomaly": SearchSpace("val_auroc", (
        Choice("algorithm", ("patchcore", "padim")),
        Float("coreset_ratio", 0.002, 0.2, log=True, when=("algorithm", "patchcore")),
        Choice("layout_model", (True, False), when=("algorithm", "patchcore")),
        Float("blur_sigma", 1.0, 8.0),
    ), tiebreak=""),
    "classification": SearchSpace("val_accuracy", OPTIMISATION),
    # Ultralytics: one_cycle and cyclic both mean a cosine decay, so only one of them is offered
    "detection": SearchSpace("val_map50", (
        Float("learning_rate", 1e-4, 5e-2, log=True),
        Choice("optimizer", ("sgd", "adam")),
        Float("momentum", 0.8, 0.98, when=("optimizer", "sgd")),
        Float("weight_decay", 1e-6, 1e-2, log=True),
        Choice("scheduler", ("one_cycle", "exponential", "none")),
        Float("lr_warmup", 0.0, 5.0),
    ), tiebreak=""),
    "segmentation": SearchSpace("val_mean_iou", (*OPTIMISATION,
                                                 Choice("class_imbalance", ("none", "weighted", "dice_focal")))),
}


def search_space(module: str) -> SearchSpace:
    if module not in SEARCH_SPACES:
        raise AstrocyteError(f"auto train is not available for {module} models yet; available: "
                             f"{sorted(SEARCH_SPACES)}")
    return SEARCH_SPACES[module]
