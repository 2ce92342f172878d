"""Exceptions of the runtime package.

The runtime must stay importable on its own (numpy, onnxruntime and Pillow only), so it does not derive
from :class:`astrocyte_lab.errors.AstrocyteError`; callers that want one ``except`` for both catch
:class:`AstromodelError` as well.
"""

from __future__ import annotations


class AstromodelError(Exception):
    """Base class: a problem with a package, an input image or a continual-learning request."""


class PackageError(AstromodelError, ValueError):
    """An ``.astromodel`` file that cannot be used: not a zip, a missing or corrupt member, bad metadata."""


class FormatVersionError(PackageError):
    """A package written by a newer astrocyte-lab (its ``format_version`` is above :data:`FORMAT_VERSION`)."""


class PreprocessError(AstromodelError, ValueError):
    """An image that does not fit the package's input contract (type, channels, ROI outside the image)."""


class ContinualError(AstromodelError):
    """A continual-learning request that cannot be honoured (no continual state, class limit reached)."""


class LimitSettingError(AstromodelError, ValueError):
    """An ``ASTROCYTE_MAX_*`` environment variable that is not a positive integer."""
