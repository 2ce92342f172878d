"""Deployable model packages (``.astromodel``) and their torch-free predictor.

Everything here needs only numpy, Pillow and (for predicting) onnxruntime, so a package can be deployed on a
machine without torch, OpenCV or the training stack. ``import astrocyte_lab.runtime`` must never import
anything of astrocyte-lab outside this folder.

- :func:`load_package` / :class:`Predictor` / :class:`Prediction`: run a package (see :mod:`.predictor`).
- :class:`SegmentationPrediction`: what a segmentation package predicts (see :mod:`.segmentation`; the tiling
  rule shared with training is in :mod:`.tiling`).
- :func:`preprocess` / :func:`preprocess_full` / :func:`load_image`: the input contract shared with training
  (see :mod:`.preprocess`).
- :func:`write_package` / :func:`read_package`: the file format (see :mod:`.package` for the metadata).
- :mod:`.limits`: the safety limits (package sizes, image pixels, network input size), raisable by environment
  variable.
"""

from __future__ import annotations

from astrocyte_lab.runtime.errors import (
    AstromodelError,
    ContinualError,
    FormatVersionError,
    LimitSettingError,
    PackageError,
    PreprocessError,
)
from astrocyte_lab.runtime.package import FORMAT_VERSION, SUFFIX, read_package, validate_metadata, write_package
from astrocyte_lab.runtime.predictor import Prediction, Predictor, load_package
from astrocyte_lab.runtime.preprocess import load_image, preprocess, preprocess_full
from astrocyte_lab.runtime.segmentation import SegmentationPrediction

__all__ = [
    "FORMAT_VERSION",
    "SUFFIX",
    "AstromodelError",
    "ContinualError",
    "FormatVersionError",
    "LimitSettingError",
    "PackageError",
    "Prediction",
    "Predictor",
    "PreprocessError",
    "SegmentationPrediction",
    "load_image",
    "load_package",
    "preprocess",
    "preprocess_full",
    "read_package",
    "validate_metadata",
    "write_package",
]
