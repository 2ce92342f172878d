"""Exceptions raised by astrocyte-lab, so callers can tell user mistakes from bugs."""

from __future__ import annotations


class AstrocyteError(Exception):
    """Base class: a problem the user can act on (bad input, missing file, conflicting name)."""


class DatasetNotFoundError(AstrocyteError, KeyError):
    """No dataset of that name exists in the workspace."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NameConflictError(AstrocyteError):
    """A dataset or category of that name already exists."""


class InvalidNameError(AstrocyteError, ValueError):
    """A name that is empty, too long, or could escape the workspace folder."""


class FormatVersionError(AstrocyteError):
    """Data written by a newer astrocyte-lab than the one reading it."""


class EmptySourceError(AstrocyteError):
    """A location or set yields no usable image."""


class ImageReadError(AstrocyteError):
    """An image file that cannot be decoded (unreadable, truncated, not an image)."""


class IncompatibleDatasetsError(AstrocyteError):
    """Datasets that cannot be combined (different image size, channels or module)."""


class StorageError(AstrocyteError):
    """Writing to the workspace failed (disk full, permissions); the last saved version is intact."""


class ConcurrentEditError(AstrocyteError):
    """Another session saved the dataset since this one loaded it; saving would undo its work."""


class LimitError(AstrocyteError):
    """Input whose declared or actual size is above a safety limit (image pixels, archive size, JSON depth).

    The message names the file, the value, the limit and the environment variable that raises it.
    """


class UnsafeArchiveError(AstrocyteError):
    """An archive holding a member that could write outside its target (link, device, absolute or ``..`` path)."""
