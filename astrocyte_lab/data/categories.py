"""Category lists per module kind, and the mapping of raw mask pixel values onto categories."""

from __future__ import annotations

from astrocyte_lab.errors import AstrocyteError, InvalidNameError

MODULES: tuple[str, ...] = ("anomaly", "classification", "detection", "segmentation")
ANOMALY_CATEGORIES: tuple[str, str] = ("Normal", "Anomaly")


def check_module(module: str) -> str:
    if module not in MODULES:
        raise AstrocyteError(f"unknown module {module!r}; choose from {list(MODULES)}")
    return module


def check_category_name(name: str, existing: list[str]) -> str:
    name = str(name).strip()
    if not name:
        raise InvalidNameError("a category name cannot be empty")
    if name in existing:
        raise AstrocyteError(f"category {name!r} already exists")
    return name


def categories_from_sources(module: str, labels: list[str | None], existing: list[str]) -> list[str]:
    """The category list after adding images labelled ``labels`` (new names sorted, appended)."""
    if module == "anomaly":
        unknown = sorted({label for label in labels if label is not None and label not in ANOMALY_CATEGORIES})
        if unknown:
            raise AstrocyteError(f"anomaly datasets use the categories {list(ANOMALY_CATEGORIES)}; "
                                 f"locations labelled {unknown} must use one of them")
        return list(ANOMALY_CATEGORIES)
    new = sorted({label for label in labels if label is not None and label not in existing})
    return list(existing) + new


def value_lut_with(values: list[int], lut: dict[int, int], categories: list[str]) -> tuple[dict[int, int], list[str]]:
    """Extend a raw-value -> category mapping with newly seen mask values.

    Each new pixel value becomes a category named after the value (renamed later by the user); a
    value whose name already exists as a category joins it.
    """
    lut = dict(lut)
    categories = list(categories)
    for value in values:
        if value in lut:
            continue
        name = str(value)
        if name in categories:
            lut[value] = categories.index(name)
        else:
            categories.append(name)
            lut[value] = len(categories) - 1
    return lut, categories
