"""Strict, bounded JSON: every refusal is a project error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrocyte_lab.data.jsonfile import JsonFileError, load_json, read_json
from astrocyte_lab.errors import LimitError


def test_plain_documents_load() -> None:
    assert load_json(b'{"a": [1, 2.5, "x"], "b": null}', "f.json") == {"a": [1, 2.5, "x"], "b": None}
    assert load_json("\ufeff[1]".encode(), "bom.json") == [1]


@pytest.mark.parametrize("text", ['{"w": NaN}', '{"w": Infinity}', '[-Infinity]'])
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(JsonFileError, match="f.json"):
        load_json(text, "f.json")


def test_huge_integers_are_refused_not_a_raw_value_error() -> None:
    with pytest.raises(JsonFileError, match="f.json"):
        load_json("[" + "9" * 5000 + "]", "f.json")


def test_deep_nesting_is_refused_before_parsing() -> None:
    with pytest.raises(LimitError, match="deep.json: JSON nested 100000 levels"):
        load_json("[" * 100_000 + "]" * 100_000, "deep.json")
    assert load_json('["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]', "s.json")


def test_syntax_errors_name_file_line_and_column() -> None:
    with pytest.raises(JsonFileError, match=r"bad.json:2:6: not valid JSON"):
        load_json('{"a": 1,\n "b" 2}', "bad.json")


def test_non_utf8_is_refused() -> None:
    with pytest.raises(JsonFileError, match="latin.json: not UTF-8"):
        load_json('{"name": "caf\xe9"}'.encode("latin-1"), "latin.json")


def test_size_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 100 + "0]")
    monkeypatch.setenv("ASTROCYTE_MAX_JSON_BYTES", "64")
    with pytest.raises(LimitError, match="big.json: JSON file size"):
        read_json(path)


def test_a_missing_file_is_a_project_error(tmp_path: Path) -> None:
    with pytest.raises(JsonFileError, match="nope.json: cannot read"):
        read_json(tmp_path / "nope.json")
