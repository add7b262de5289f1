"""YAML files in, validated pydantic models out, every error as ``file:line: [field] message``.

Used by run configs (config.py) and every other YAML file polytask reads (monitor rules,
federated configs), so they all report mistakes the same way: duplicate keys refused, and an
unknown key answered with the closest known one.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from polytask.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
#: Most nodes a document may hold once its aliases are expanded: a config has hundreds, and a
#: "billion laughs" document (aliases of aliases) would exhaust memory when dumped or validated.
MAX_EXPANDED_NODES = 100_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a config with a duplicate key is a mistake."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    keys: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        keys.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest YAML node on the path ``loc``."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                break
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _model_at(loc: tuple[Any, ...], root: type[BaseModel] | None) -> type[BaseModel] | None:
    model: Any = root
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        if isinstance(part, int) or part not in model.model_fields:
            continue
        annotation = model.model_fields[part].annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _describe(error: dict[str, Any], source: str, root: yaml.Node | None,
              schema: type[BaseModel] | None = None) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = _line_of(root, loc)
    where = f"{source}:{line}" if line else source
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1], schema)
        known = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        return f"{where}: [{field}] unknown key ({hint})"
    return f"{where}: [{field}] {message}"


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML; list items by index). A section
    written as a plain name (``weighting: static``, ``sampler: uniform``) is the shorthand for
    ``{name: ...}``, so an override inside it (``weighting.weights.intent=2``) expands it first."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"--set {override!r}: expected key.path=value, e.g. train.lr=3e-5")
        path, text = override.split("=", 1)
        parts = path.strip().split(".")
        target: Any = raw
        for part in parts[:-1]:
            if isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            elif isinstance(target, dict):
                if isinstance(target.get(part), str):
                    target[part] = {"name": target[part]}
                target = target.setdefault(part, {})
            else:
                raise ConfigError(f"--set {override!r}: {part!r} is not a section of the config")
        last = parts[-1]
        value = yaml.safe_load(text)
        if isinstance(target, list) and last.isdigit() and int(last) < len(target):
            target[int(last)] = value
        elif isinstance(target, dict):
            target[last] = value
        else:
            raise ConfigError(f"--set {override!r}: {last!r} is not a key of the config")
    return raw


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def check_aliases(root: yaml.Node | None, source: str | Path) -> None:
    """Refuse a document whose aliases expand to more than MAX_EXPANDED_NODES nodes, or that
    refers to itself, naming the line of the anchor that is repeated the most."""
    sizes: dict[int, int] = {}
    uses: dict[int, int] = {}
    open_nodes: set[int] = set()

    def expanded(node: yaml.Node) -> int:  # depth = the document's nesting, already parsed
        uses[id(node)] = uses.get(id(node), 0) + 1
        if id(node) in open_nodes:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to its own "
                              "anchor (a recursive structure); write the value out instead")
        if id(node) not in sizes:
            open_nodes.add(id(node))
            sizes[id(node)] = 1 + sum(expanded(child) for child in _children(node))
            open_nodes.discard(id(node))
        return sizes[id(node)]

    if root is None or expanded(root) <= MAX_EXPANDED_NODES:
        return
    nodes: dict[int, yaml.Node] = {}
    stack = [root]
    while stack:  # the anchors: nodes used more than once
        node = stack.pop()
        if id(node) not in nodes:
            nodes[id(node)] = node
            stack.extend(_children(node))
    anchor = max((n for n in nodes.values() if uses[id(n)] > 1), key=lambda n: sizes[id(n)] * uses[id(n)])
    raise ConfigError(f"{source}:{anchor.start_mark.line + 1}: aliases of this anchor expand the "
                      f"document to {sizes[id(root)]:,} values (limit {MAX_EXPANDED_NODES:,}); "
                      "write the values out, or use fewer nested aliases")


def read_yaml(path: Path, what: str = "config") -> tuple[Any, yaml.Node | None]:
    """The parsed YAML of ``path`` and its node tree (for line numbers); duplicate keys,
    bad UTF-8, bad YAML, nesting too deep and alias bombs are ConfigErrors naming the file."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; flatten the structure") from None
    check_aliases(node, path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return raw, node


def validate_yaml(schema: type[ModelT], raw: Any, source: str, node: yaml.Node | None = None,
                  what: str = "config") -> ModelT:
    """``raw`` validated as ``schema``; every error as ``file:line: [field] message``, with
    the closest known key for a typo (what load_config does, for other YAML files)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the {what} must be a YAML mapping")
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e, source, node, schema) for e in exc.errors()]
        raise ConfigError(f"invalid {what}:\n  - " + "\n  - ".join(lines)) from None
