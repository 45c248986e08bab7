"""Reading a manifest file into a document: the size cap, and strict, bounded YAML.

Owns `read_manifest_bytes` (refused before reading when over `limits.max_manifest_bytes`) and
`parse_yaml`: PyYAML's safe loader made strict (a key given twice in one mapping is an error, not the
last one silently kept) and bounded (nesting deeper than `limits.max_yaml_depth` and aliases that expand
the document past `limits.max_alias_nodes` are refused while composing, before anything walks the
result). Every refusal is a `ManifestError` naming the file. Must not interpret the document: that is
`expand.py`'s and the validators' business.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import yaml

from ltx2_batch.errors import FieldProblem, ManifestError
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.values import type_name

_YAML_ERROR_CHARS = 2000  # a YAML error quotes the text it choked on: cut it to keep the message readable


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last), nesting
    deeper than `limits.max_yaml_depth` (the composer recurses: 20000 levels would exhaust the stack) and
    aliases that expand the document by more than `limits.max_alias_nodes` nodes (an alias bomb: a few
    lines naming a list of lists ten times per level is millions of nodes to anything that walks it)."""

    limits: Limits = DEFAULT_LIMITS

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self._depth = 0
        self._literal = 0  # nodes written in the file
        self._expanded: dict[int, int] = {}  # id(node) -> nodes under it once aliases are expanded

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        """PyYAML's composer with two bounds checked as each node is composed: nesting depth, and how far
        aliases expand the document beyond the nodes written."""
        self._depth += 1
        if self._depth > self.limits.max_yaml_depth:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nesting deeper than {self.limits.max_yaml_depth} levels (limits.max_yaml_depth)",
                self.peek_event().start_mark,  # type: ignore[no-untyped-call]  # PyYAML's stubs leave it untyped
            )
        alias = self.check_event(yaml.AliasEvent)
        try:
            # index: PyYAML passes a position, a mapping's key node or None; types-PyYAML says int
            node = super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1
        if node is None:  # never, in PyYAML; its stub allows it
            return None
        if not alias:
            self._literal += 1
        size = self._expanded.get(id(node))
        if size is None:
            if isinstance(node, yaml.SequenceNode):
                children: Iterable[yaml.Node] = node.value
            elif isinstance(node, yaml.MappingNode):
                children = (n for pair in node.value for n in pair)
            else:
                children = ()
            size = 1 + sum(self._expanded.get(id(child), 1) for child in children)
            self._expanded[id(node)] = size
        if size > self._literal + self.limits.max_alias_nodes:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand this document to over {size:,} nodes from {self._literal:,} written "
                f"(limit: {self.limits.max_alias_nodes:,} more, limits.max_alias_nodes); write the "
                "values out or use fewer nested aliases",
                node.start_mark,
            )
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """PyYAML's mapping constructor, refusing a key given twice or a key that is not a plain value."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # `? [a, b]`: a list or mapping as a key
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"a mapping key must be a plain value (a name), got a {type_name(key)}",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def not_a_file(path: Path) -> str:
    """Why an existing path that is not a regular file cannot be a manifest (from its stat: never opened)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot read the manifest: {exc}"
    if stat.S_ISDIR(mode):
        inside = sorted(p.name for p in path.glob("*.y*ml") if p.is_file())[:10]
        hint = f"; it holds {', '.join(inside)}" if inside else ""
        return f"is a folder, not a manifest file: give the path of a YAML file in it{hint}"
    kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket or a device"
    return f"is {kind}, not a manifest file: save the manifest to a YAML file and give its path"


def read_manifest_bytes(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The manifest's bytes, refused before reading when the file is over `limits.max_manifest_bytes`. Opened
    without blocking and checked to be a regular file first: a FIFO would block the read forever."""
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if Path(path).exists() and not Path(path).is_file():
            raise ManifestError([FieldProblem(source, "<file>", not_a_file(Path(path)))]) from None
        raise ManifestError([FieldProblem(source, "<file>", f"cannot read the manifest: {exc}")]) from exc
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ManifestError([FieldProblem(source, "<file>", not_a_file(Path(path)))])
        try:  # sized by the file: `read(n)` allocates n bytes up front, 64 MiB for a 1 KB manifest
            data = handle.read(min(status.st_size, limits.max_manifest_bytes) + 1)
        except OSError as exc:
            raise ManifestError([FieldProblem(source, "<file>", f"cannot read the manifest: {exc}")]) from exc
    return data  # parse_yaml refuses one byte over the limit


def parse_yaml(data: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The manifest in `data`: strict, bounded YAML, a mapping; else a ManifestError naming `source`."""
    if len(data) > limits.max_manifest_bytes:
        message = (
            f"is {len(data):,} bytes, over the limit of {limits.max_manifest_bytes:,} "
            "(limits.max_manifest_bytes); move long prompt lists into a `prompts:` file"
        )
        raise ManifestError([FieldProblem(source, "<file>", message)])
    loader = _StrictLoader(data)
    loader.limits = limits
    try:
        doc = loader.get_single_data()
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of more than 4300 digits
        text = str(exc)
        text = text if len(text) < _YAML_ERROR_CHARS else text[:_YAML_ERROR_CHARS] + "..."
        raise ManifestError([FieldProblem(source, "<yaml>", f"not valid YAML: {text}")]) from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        got = "an empty file" if doc is None else type(doc).__name__
        raise ManifestError(
            [FieldProblem(source, "<manifest>", f"must be a mapping with `jobs:`, got {got}")]
        )
    return doc
