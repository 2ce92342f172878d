"""A minimal XML element tree that remembers the line of every element, for messages naming file:line.

The standard ElementTree drops line numbers, and annotation errors are only useful when they point at
the offending ``<object>``. Entity declarations are refused, which rules out entity-expansion attacks
from untrusted annotation files; expat never fetches external resources here. Files above the
``annotation_file_bytes`` limit are refused before reading, and an unknown or unsupported ``encoding=``
in the XML declaration is an AnnotationError like any other malformed XML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from astrocyte_lab.data.annotations import AnnotationError
from astrocyte_lab.data.limits import check_limit


@dataclass
class XmlNode:
    """One element: tag, attributes, stripped text, children, and the line its start tag is on."""

    tag: str
    line: int
    attributes: dict[str, str] = field(default_factory=dict)
    children: list[XmlNode] = field(default_factory=list)
    text: str = ""

    def find(self, tag: str) -> XmlNode | None:
        """The first direct child named ``tag``."""
        return next((child for child in self.children if child.tag == tag), None)

    def find_all(self, tag: str) -> list[XmlNode]:
        return [child for child in self.children if child.tag == tag]

    def child_text(self, tag: str) -> str | None:
        """Text of the first direct child named ``tag`` (None when there is no such child)."""
        child = self.find(tag)
        return None if child is None else child.text


def parse_xml(path: Path) -> XmlNode:
    """Parse ``path`` into :class:`XmlNode`; an AnnotationError with the parser's line when malformed."""
    try:
        check_limit("annotation_file_bytes", path.stat().st_size, path, "annotation file size (bytes)")
        data = path.read_bytes()
    except OSError as exc:
        raise AnnotationError(path, f"cannot read file ({exc.strerror or exc})") from None
    parser = expat.ParserCreate()
    stack: list[XmlNode] = []
    texts: list[list[str]] = []
    root: list[XmlNode] = []

    def start(tag: str, attributes: dict[str, str]) -> None:
        node = XmlNode(tag, parser.CurrentLineNumber, dict(attributes))
        (stack[-1].children if stack else root).append(node)
        stack.append(node)
        texts.append([])

    def end(_tag: str) -> None:
        stack.pop().text = "".join(texts.pop()).strip()

    def characters(data: str) -> None:
        if texts:
            texts[-1].append(data)

    def refuse_entity(*_args: object) -> None:
        raise AnnotationError(path, "malformed XML: entity declarations are not allowed",
                              parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.EntityDeclHandler = refuse_entity
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise AnnotationError(path, f"malformed XML: {expat.ErrorString(exc.code)} (column {exc.offset + 1})",
                              exc.lineno) from None
    except (LookupError, ValueError) as exc:  # encoding= names a codec Python lacks or expat cannot use
        raise AnnotationError(path, f"malformed XML: unusable encoding in the XML declaration ({exc})",
                              parser.CurrentLineNumber) from None
    if not root:
        raise AnnotationError(path, "malformed XML: no root element")
    return root[0]
