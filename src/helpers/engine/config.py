"""Read, validate and merge ``config/params.yml`` against its schema, ``config/params.schema.yml``.

Layout of the file::

    global:            # shared by every notebook (dataset, seed, labels, shared cut-offs)
      key: value
    notebooks:         # one block per notebook, keyed by the notebook's stem (``03_de``)
      03_de:
        key: value
    profiles:          # named overrides of the two blocks above
      test:
        global: {...}
        notebooks: {03_de: {...}}

**The schema.** ``config/params.schema.yml`` is JSON Schema (draft 2020-12) written as YAML and
checked with the ``jsonschema`` package: the same schema language the upstream workflow uses
(``workflow/schemas/*.yaml``, validated by Snakemake). It gives every key its type, its choices
(``enum``) and its range, and forbids unknown keys (``additionalProperties: false``) except in
the free-form label maps. Rules that compare two keys, which JSON Schema cannot state, are
:data:`RULES` below (``cr_label`` differs from ``nr_label``, ``min_size <= max_size``, ...).
The schema beside the parameter file is used (a project's own), else this checkout's.

**What is validated, and how errors read.** The file as written (with every key required in
``global`` and the chapter blocks); then, for each profile, the defaults with the profile merged
in; then a ``--params`` file (:meth:`Params.read_overrides`) and ``--set`` values merged the same
way. Each error is ONE line naming where the bad value came from::

    config/params.yml: notebooks.03_de.p_maxx: unknown key 'p_maxx' (did you mean 'p_max'?)
    config/params.yml: profiles.test.global.p_max: must be > 0 and <= 1, got -0.5
    --set: 08_pam.priors: must be one of proportions, equal, got 'proportion' (did you mean 'proportions'?)

**Merge order.** A notebook sees ``global`` merged with its own block, then the profile's
overrides, then a ``--params`` file, then ``--set``. Mappings merge key by key (a profile may
change one key of ``simulate``); lists and scalars are replaced. ``uses`` (the chapter registry's
``globals``) drops the global keys a notebook does not use, so changing them does not touch its
fingerprint.

**``--set`` keys.** ``seed=7`` sets a global key (or, for a key that is not global, that key in
every chapter block that has it); ``03_de.covariate=cohort`` a chapter's key;
``03_de.p_max=0.05`` a global key for that chapter only; and a dotted path reaches into
mappings: ``01_cohort.custom.table=/data/counts.tsv`` sets one key of ``custom``. A value is read
as YAML (``[a, b]`` is a list, ``{table: x}`` a mapping that is merged key by key).

**YAML.** Every YAML file the project reads as configuration (``params.yml``, the schema,
``config/book.yml``, a ``--params`` file) and every ``--set`` value goes through one safe loader,
:func:`load_yaml` / :func:`yaml_value`, that nothing in a file can make execute code, and that
follows YAML 1.2 for scalars: ``010`` is 10 (not octal 8), ``12:30`` is text (not 750), ``1e-3``
is a float (not text), ``yes``/``no``/``on``/``off`` are text (only ``true``/``false`` are
booleans), and there are no timestamps. It refuses duplicated keys, non-text keys, merge keys and
anchors/aliases (``&a``/``*a``), the last at the first anchor, before any expansion, so a
"billion laughs" file costs nothing.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.events import AliasEvent

from helpers.engine import paths
from helpers.engine.errors import InputError

SCHEMA_NAME = "params.schema.yml"
SOURCE_SCHEMA = Path(__file__).resolve().parents[3] / "config" / SCHEMA_NAME  # this checkout's
STEM = re.compile(r"^\d\d_")  # a --set key whose first part looks like a chapter stem is scoped


# =============================================================================== the YAML loader


class RefusedYAML(yaml.MarkedYAMLError):
    """Valid YAML that a parameter file may not use (anchors, duplicated keys, ...)."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 (core schema) scalars, and no anchors, aliases, merge
    keys, duplicated keys or non-text keys."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) or event.anchor is not None:
            name = ("*" if isinstance(event, AliasEvent) else "&") + str(event.anchor)
            raise RefusedYAML(
                None,
                None,
                f"YAML anchors and aliases are not allowed (found {name}); "
                "write each value out (quote a value that starts with * or &)",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise RefusedYAML(None, None, f"expected a mapping, found {node.id}", node.start_mark)
        out, first_line = {}, {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise RefusedYAML(None, None, "merge keys (<<) are not allowed", key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                found = (
                    f"{key_node.value} (quote it: '{key_node.value}')"
                    if isinstance(key_node, yaml.ScalarNode)
                    else f"a {key_node.id}"
                )
                raise RefusedYAML(None, None, f"keys must be text, found {found}", key_node.start_mark)
            if key in out:
                raise RefusedYAML(
                    None, None, f"duplicated key '{key}' (first at line {first_line[key]})", key_node.start_mark
                )
            out[key] = self.construct_object(value_node, deep=deep)
            first_line[key] = key_node.start_mark.line + 1
        return out

    def construct_yaml12_int(self, node):
        text = self.construct_scalar(node)
        sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
        try:
            if digits[:2] in ("0o", "0x"):
                return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
            return sign * int(digits, 10)  # leading zeros are decimal: 010 is 10
        except ValueError:
            raise RefusedYAML(None, None, f"not an integer: {text!r}", node.start_mark) from None

    def construct_yaml12_float(self, node):
        text = self.construct_scalar(node)
        low = text.lower()
        if low.lstrip("+-") == ".inf":
            return -math.inf if low.startswith("-") else math.inf
        if low == ".nan":
            return math.nan
        try:
            return float(text)
        except ValueError:
            raise RefusedYAML(None, None, f"not a number: {text!r}", node.start_mark) from None

    def construct_yaml12_bool(self, node):
        return self.construct_scalar(node).lower() == "true"


# The YAML 1.2 core schema's resolvers replace PyYAML's YAML 1.1 ones (octal 010, sexagesimal
# 12:30, yes/no booleans, timestamps, floats that need a dot).
StrictLoader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
]:
    StrictLoader.add_implicit_resolver(_tag, re.compile(_regexp), _first)
# Only the core schema's types can be constructed (an explicit !!timestamp, !!binary, !!set or a
# !!python/... tag is an error, as any unknown tag).
StrictLoader.yaml_constructors = {
    k: v
    for k, v in yaml.SafeLoader.yaml_constructors.items()
    if k in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map", None)
}
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml12_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml12_float)
StrictLoader.add_constructor("tag:yaml.org,2002:bool", StrictLoader.construct_yaml12_bool)


def yaml_value(text: str):
    """``text`` read as one YAML document with :class:`StrictLoader` (raises ``yaml.YAMLError``)."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(path, what: str = "config file"):
    """Read a YAML file with :class:`StrictLoader`; any problem is a one-line :class:`InputError`
    naming the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path) from None
    except IsADirectoryError:
        raise InputError(f"is a folder, not a {what}", path=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start})", path=path) from None
    try:
        return yaml_value(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        problem = getattr(e, "problem", None) or str(e)
        if isinstance(e, RefusedYAML):
            raise InputError(problem, path=path, where=where) from None
        raise InputError(f"not valid YAML ({problem})", path=path, where=where) from None


# =============================================================================== the schema


def _is_integer(_checker, v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # 2.0 is not an integer here


def _is_number(_checker, v) -> bool:  # finite: NaN and infinity pass no range, so they are refused
    return _is_integer(_checker, v) or (isinstance(v, float) and math.isfinite(v))


@functools.lru_cache(maxsize=8)
def _validator_for(path: str, mtime_ns: int):
    import jsonschema  # imported here: reading YAML (the twin, the registry) does not need it

    base = jsonschema.Draft202012Validator
    cls = jsonschema.validators.extend(
        base, type_checker=base.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_number})
    )
    schema = load_yaml(path, "parameter schema")
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        where = ".".join(map(str, e.absolute_path)) or None
        raise InputError(f"not a valid JSON Schema ({e.message})", path=path, where=where) from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER), cls


def schema_path_for(params_path) -> Path:
    """The schema beside ``params_path`` (a project's own), else the project's, else this checkout's."""
    for cand in (Path(params_path).with_name(SCHEMA_NAME), paths.ROOT / "config" / SCHEMA_NAME, SOURCE_SCHEMA):
        if cand.is_file():
            return cand
    raise InputError(
        "parameter schema not found (it belongs beside params.yml)", path=Path(params_path).with_name(SCHEMA_NAME)
    )


def validator(schema_path, ref: str | None = None):
    """A ``jsonschema`` validator for the schema file (``ref``: one of its ``$defs``)."""
    p = Path(schema_path).resolve()
    v, cls = _validator_for(str(p), p.stat().st_mtime_ns)
    if ref is None:
        return v
    return cls({"$defs": v.schema.get("$defs", {}), "$ref": f"#/$defs/{ref}"}, format_checker=cls.FORMAT_CHECKER)


# =============================================================================== problems


@dataclass
class Problem:
    """One invalid value: where it is in the merged document, and what is wrong. ``alternatives``
    are the same problem told from another key (for rules about two keys: whichever the user set)."""

    path: tuple
    message: str
    alternatives: list = field(default_factory=list)  # [(path, message)]

    def candidates(self):
        return [(self.path, self.message)] + list(self.alternatives)


def dotted(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def set_key(path) -> str:
    """A document path in ``--set`` spelling: ``notebooks.03_de.covariate`` -> ``03_de.covariate``,
    ``global.seed`` -> ``seed``."""
    path = tuple(path)
    return dotted(path[1:] if path[:1] in (("notebooks",), ("global",)) else path)


def _short(v, n: int = 60) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _typed(v) -> str:
    """A value with its YAML type, for type errors: ``text '12:30'``, ``a list [1, 2]``."""
    if isinstance(v, str):
        return f"text {_short(v)}"
    if isinstance(v, list):
        return f"a list {_short(v)}"
    if isinstance(v, dict):
        return f"a mapping {_short(v)}"
    return _short(v)


def _close(word, choices):
    """The choice closest to ``word`` (case-insensitive), or None."""
    low = {}
    for c in choices:
        low.setdefault(str(c).lower(), str(c))
    close = difflib.get_close_matches(str(word).lower(), list(low), n=1, cutoff=0.6)
    return low[close[0]] if close else None


def _hint(word, choices) -> str:
    close = _close(word, choices)
    return f" (did you mean '{close}'?)" if close else ""


_TYPE_NAMES = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _range(s: dict) -> str:
    parts = []
    if "exclusiveMinimum" in s:
        parts.append(f"> {s['exclusiveMinimum']}")
    if "minimum" in s:
        parts.append(f">= {s['minimum']}")
    if "exclusiveMaximum" in s:
        parts.append(f"< {s['exclusiveMaximum']}")
    if "maximum" in s:
        parts.append(f"<= {s['maximum']}")
    return " and ".join(parts)


def _choices(values) -> str:
    return ", ".join("null" if v is None else str(v) for v in values)


def _describe(s: dict) -> str:
    """What a schema accepts, in words: ``a number > 0 and <= 1``, ``one of counts, logexpr``."""
    if "const" in s:
        return _short(s["const"])
    if "enum" in s:
        return f"one of {_choices(s['enum'])}"
    types = s.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    main = [_TYPE_NAMES.get(t, t) for t in types if t != "null"]
    text = " or ".join(main)
    if _range(s):
        text = f"{text} {_range(s)}".strip()
    if "null" in types:
        text = f"{text} or null" if text else "null"
    return text or "valid"


def _enums(s: dict):
    """Every choice named in ``s`` and its anyOf/oneOf alternatives (for did-you-mean hints)."""
    out = list(s.get("enum", []))
    if "const" in s:
        out.append(s["const"])
    for alt in s.get("anyOf", []) + s.get("oneOf", []):
        out += _enums(alt)
    return [c for c in out if isinstance(c, str)]


def _problem(e, global_keys=()) -> Problem:
    """A jsonschema error as one Problem with this project's wording (``global_keys``: for the
    hint that a key written in a chapter block belongs in ``global``)."""
    path, s, v, kind = tuple(e.absolute_path), e.schema if isinstance(e.schema, dict) else {}, e.instance, e.validator
    custom = s.get("errorMessage")
    if "propertyNames" in e.schema_path:
        return Problem(path + (v,), custom or f"name {v!r} is not allowed")
    if kind == "additionalProperties":
        known = list(s.get("properties", {}))
        extra = next(k for k in v if k not in known)
        what = "chapter" if path == ("notebooks",) else "key"
        hint = _hint(extra, known)
        if not hint and len(path) == 2 and path[0] == "notebooks" and _close(extra, global_keys):
            hint = f" (did you mean '{_close(extra, global_keys)}'? it is a global key: set it under global)"
        hint = hint or (f" (known: {', '.join(known)})" if known else " (this block takes no keys)")
        return Problem(path + (extra,), f"unknown {what} '{extra}'{hint}")
    if kind == "required":
        missing = next(k for k in e.validator_value if k not in v)
        return Problem(path + (missing,), f"missing key '{missing}' (every key needs its default here)")
    if custom:
        return Problem(path, f"{custom}, got {_typed(v) if kind == 'type' else _short(v)}{_hint(v, _enums(s))}")
    if kind == "type":
        return Problem(path, f"must be {_describe(s)}, got {_typed(v)}")
    if kind in ("enum", "const"):
        return Problem(path, f"must be {_describe(s)}, got {_short(v)}{_hint(v, _enums(s))}")
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return Problem(path, f"must be {_range(s)}, got {_short(v)}")
    if kind in ("minItems", "maxItems"):
        lo, hi = s.get("minItems"), s.get("maxItems")
        n = f"exactly {lo}" if lo == hi else (f"at least {lo}" if kind == "minItems" else f"at most {hi}")
        return Problem(path, f"must list {n} item(s), got {_short(v)}")
    if kind == "uniqueItems":
        return Problem(path, f"must not repeat an item, got {_short(v)}")
    if kind == "minLength":
        return Problem(path, "must not be empty")
    if kind == "format" and e.validator_value == "regex":
        return Problem(path, f"must be a valid regular expression ({e.cause}), got {_short(v)}")
    if kind in ("anyOf", "oneOf"):
        alts = " or ".join(_describe(a) for a in e.validator_value)
        return Problem(path, f"must be {alts}, got {_short(v)}{_hint(v, _enums(s))}")
    return Problem(path, " ".join(e.message.split()))


def _position(doc, path) -> tuple:
    """Sort key: where ``path`` is in ``doc`` (file order), so the first problem is reported first."""
    key, node = [], doc
    for p in path:
        if isinstance(node, dict) and p in node:
            key.append(list(node).index(p))
            node = node[p]
        elif isinstance(node, list) and isinstance(p, int) and p < len(node):
            key.append(p)
            node = node[p]
        else:
            key.append(1 << 30)
            break
    return tuple(key)


# =============================================================================== rules JSON Schema cannot state


def _rule_labels(doc):
    g = doc.get("global") or {}
    if "cr_label" in g and "nr_label" in g and g["cr_label"] == g["nr_label"]:
        both = _short(g.get("cr_label"))
        yield Problem(
            ("global", "nr_label"),
            f"must differ from cr_label (both are {both})",
            [(("global", "cr_label"), f"must differ from nr_label (both are {both})")],
        )


def _rule_order(lo_key, hi_key, where):
    def rule(doc):
        for stem, block in (doc.get("notebooks") or {}).items():
            node = block
            for k in where:
                node = node.get(k) if isinstance(node, dict) else None
            if isinstance(node, dict) and lo_key in node and hi_key in node and node[lo_key] > node[hi_key]:
                lo, hi = node[lo_key], node[hi_key]
                base = ("notebooks", stem) + tuple(where)
                yield Problem(
                    base + (hi_key,),
                    f"must be >= {lo_key} ({_short(lo)}), got {_short(hi)}",
                    [(base + (lo_key,), f"must be <= {hi_key} ({_short(hi)}), got {_short(lo)}")],
                )

    return rule


#: Rules about two keys, checked on every merged document after the schema passed.
RULES = [
    _rule_labels,
    _rule_order("min_size", "max_size", ()),
    _rule_order("age_min", "age_max", ("simulate", "clinical")),
]


def problems(doc, schema_path, ref: str | None = None) -> list[Problem]:
    """Every problem of ``doc`` under the schema (first in file order first), or, if there is
    none, under :data:`RULES`."""
    v = validator(schema_path, ref)
    global_keys = list(v.schema.get("$defs", {}).get("global", {}).get("properties", {}))
    found = [_problem(e, global_keys) for e in v.iter_errors(doc)]
    if not found and ref is None:
        found = [p for rule in RULES for p in rule(doc)]
    return sorted(found, key=lambda p: _position(doc, p.path))


# =============================================================================== merging


def _deep_update(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = copy.deepcopy(v)


def _merged(base: dict, over) -> dict:
    """``base`` (a ``{global, notebooks}`` document) with an override (profile or --params file) merged in."""
    doc = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            _deep_update(doc[k], v)
        elif v is not None:
            doc[k] = copy.deepcopy(v)
    return doc


def _touches(layer, path) -> bool:
    """Did the override ``layer`` (a nested mapping) set ``path`` or one of its ancestors?"""
    node = layer
    for p in path:
        if not isinstance(node, dict):
            return True  # the layer replaced an ancestor wholesale
        if p not in node:
            return False
        node = node[p]
    return True


def _assign(doc: dict, path: tuple, value, key: str) -> None:
    node = doc
    for i, k in enumerate(path[:-1]):
        if k not in node:
            node[k] = {}  # a new key: the schema says whether it may exist
        if not isinstance(node[k], dict):
            raise InputError(f"'{k}' is not a mapping, so it has no key '{path[i + 1]}'", path="--set", where=key)
        node = node[k]
    last = path[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        _deep_update(node[last], value)  # a mapping given with --set overrides only its keys
    else:
        node[last] = copy.deepcopy(value)


# =============================================================================== the parameter file


class Params:
    """The validated parameter file (and, on demand, its profiles, ``--params`` files and ``--set``
    values merged in and validated)."""

    def __init__(self, path, schema=None):
        self.path = Path(path)
        data = load_yaml(self.path)
        self.schema = Path(schema) if schema else schema_path_for(self.path)
        if not isinstance(data, dict):
            raise InputError("top level must be a mapping with 'global' and 'notebooks'", path=self.path)
        self._raise_first(problems(data, self.schema), layer=data)
        self.global_ = data["global"]
        self.notebooks = data["notebooks"]
        self.profiles = data.get("profiles") or {}
        self._docs = {"default": {"global": self.global_, "notebooks": self.notebooks}}
        for name, over in self.profiles.items():
            doc = _merged(self._docs["default"], over)
            self._raise_first(problems(doc, self.schema), layer=over, prefix=f"profiles.{name}")
            self._docs[name] = doc
        self._cache: dict = {}

    def _raise_first(self, found, layer, prefix: str = "", source=None):
        if not found:
            return
        first = found[0]
        path, message = next(((p, m) for p, m in first.candidates() if _touches(layer or {}, p)), first.candidates()[0])
        where = ".".join(x for x in (prefix, dotted(path)) if x)
        raise InputError(message, path=source or self.path, where=where)

    # -- overrides ------------------------------------------------------------------------------
    def _doc(self, profile: str) -> dict:
        if profile not in self._docs:
            known = ", ".join(["default"] + sorted(self.profiles))
            raise InputError(
                f"unknown profile '{profile}' (known: {known}){_hint(profile, self._docs)}", path=self.path
            )
        return self._docs[profile]

    def _targets(self, key: str) -> list[tuple[tuple, str | None]]:
        """Where a ``--set`` key writes: ``[(path, None)]`` in the document, or ``[(path, stem)]``
        for a global key scoped to one chapter (``path`` then starts with ``global``)."""
        parts = key.split(".")
        if not all(parts):
            raise InputError("empty name in a dotted key", path="--set", where=key)
        if STEM.match(parts[0]) or parts[0] in self.notebooks:
            stem = parts[0]
            if stem not in self.notebooks:
                hint = _hint(stem, self.notebooks) or f" (known: {', '.join(self.notebooks)})"
                raise InputError(f"unknown notebook '{stem}'{hint}", path="--set", where=key)
            if len(parts) == 1:
                raise InputError(f"name a key of the chapter: {stem}.KEY=VALUE", path="--set", where=key)
            name = parts[1]
            if name in self.notebooks[stem]:
                return [(("notebooks",) + tuple(parts), None)]
            if name in self.global_:
                return [(("global",) + tuple(parts[1:]), stem)]
            known = list(self.notebooks[stem]) + list(self.global_)
            raise InputError(f"unknown key '{name}' for {stem}{_hint(name, known)}", path="--set", where=key)
        name = parts[0]
        out = [(("global",) + tuple(parts), None)] if name in self.global_ else []
        out += [(("notebooks", stem) + tuple(parts), None) for stem, block in self.notebooks.items() if name in block]
        if not out:
            known = list(self.global_) + [k for b in self.notebooks.values() for k in b] + list(self.notebooks)
            raise InputError(f"unknown key '{name}'{_hint(name, known)}", path="--set", where=key)
        return out

    def _raise_for_sets(self, doc, applied):
        found = problems(doc, self.schema)
        if not found:
            return
        first = found[0]
        for path, message in first.candidates():
            for key, target in reversed(applied):  # the last --set that wrote there is the one to blame
                n = min(len(path), len(target))
                if path[:n] == target[:n]:
                    where = key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[len(target) :])
                    raise InputError(message, path="--set", where=where)
        raise InputError(first.message, path="--set", where=set_key(first.path))

    def _resolve(self, profile: str, sets: dict | None):
        """The document for ``profile`` with ``sets`` applied, and the chapter-scoped global
        sets, validated (cached)."""
        sets = sets or {}
        ck = (profile, json.dumps(list(sets.items()), default=repr))
        if ck not in self._cache:
            doc = copy.deepcopy(self._doc(profile))
            applied, scoped = [], {}
            for key, value in sets.items():
                for path, stem in self._targets(key):
                    if stem is None:
                        _assign(doc, path, value, key)
                        applied.append((key, path))
                    else:
                        scoped.setdefault(stem, []).append((key, path, value))
            self._raise_for_sets(doc, applied)
            for items in scoped.values():  # a global set for one chapter: checked in its view
                view = copy.deepcopy(doc)
                for key, path, value in items:
                    _assign(view, path, value, key)
                self._raise_for_sets(view, applied + [(k, p) for k, p, _ in items])
            self._cache[ck] = (doc, scoped)
        return self._cache[ck]

    def check_sets(self, sets: dict, profile: str = "default") -> None:
        """Every ``--set`` key must name a global key, a chapter's key or a path into one, and
        the merged result must satisfy the schema."""
        self._resolve(profile, sets)

    def read_overrides(self, path, profile: str = "default") -> dict:
        """A ``--params`` file (shaped like a profile: ``global:`` / ``notebooks:``), validated
        over ``profile``, as ``--set`` entries (``{"seed": 7, "01_cohort.custom": {...}}``).
        Paths in it may point outside the project: the user named the file, as with ``--set``."""
        path = Path(path)
        data = load_yaml(path, "parameters file")
        self._raise_first(problems(data, self.schema, ref="override"), layer=data, source=path)
        data = data or {}
        doc = _merged(self._doc(profile), data)
        self._raise_first(problems(doc, self.schema), layer=data, source=path)
        out = dict((data.get("global") or {}).items())
        for stem, block in (data.get("notebooks") or {}).items():
            out.update({f"{stem}.{k}": v for k, v in (block or {}).items()})
        return copy.deepcopy(out)

    # -- what a notebook sees ------------------------------------------------------------------
    def defaults_for(self, notebook: str) -> dict:
        if notebook not in self.notebooks:
            raise InputError(f"no block 'notebooks.{notebook}'{_hint(notebook, self.notebooks)}", path=self.path)
        merged = copy.deepcopy(self.global_)
        merged.update(copy.deepcopy(self.notebooks[notebook]))
        return merged

    def effective(
        self, notebook: str, profile: str = "default", sets: dict | None = None, uses: tuple | None = None
    ) -> dict:
        """Parameters for ``notebook``: global + notebook block + profile + ``--set`` overrides.

        ``uses`` (from the chapter registry) names the global keys the notebook uses; the others
        are left out, so changing them does not touch the notebook's fingerprint. ``profile`` (the
        run's profile name) is a pseudo-global a notebook may declare.
        """
        self.defaults_for(notebook)  # the block must exist
        doc, scoped = self._resolve(profile, sets)
        params = copy.deepcopy(doc["global"])
        params.update(copy.deepcopy(doc["notebooks"][notebook]))
        for key, path, value in scoped.get(notebook, []):
            _assign(params, path[1:], value, key)
        params["profile"] = profile
        if uses is not None:
            keep = set(uses) | set(self.notebooks[notebook])
            params = {k: v for k, v in params.items() if k in keep}
        return params


# =============================================================================== paths, --set, hash


def _looks_like_path(v) -> bool:
    return isinstance(v, str) and ("/" in v or v.startswith("~") or v.startswith(".."))


def _outside_paths(value, key: str, root: Path):
    """(key, value) of every path-like string under ``value`` that resolves outside ``root``."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _outside_paths(v, f"{key}.{k}", root)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _outside_paths(v, f"{key}[{i}]", root)
    elif _looks_like_path(value):
        p = Path(value).expanduser()
        p = (p if p.is_absolute() else root / p).resolve()
        if p != root and root not in p.parents:
            yield key, value


def check_paths(params_file: Params, root: Path) -> None:
    """Paths written in the parameter file must stay inside the project (``root``); a path
    elsewhere is accepted only from the command line (``--set``, ``--params``), where the user
    named it."""
    root = Path(root).resolve()
    blocks = [("global", params_file.global_)] + [(f"notebooks.{k}", v) for k, v in params_file.notebooks.items()]
    blocks += [(f"profiles.{k}", v) for k, v in params_file.profiles.items()]
    for name, block in blocks:
        for key, value in _outside_paths(block or {}, name, root):
            raise InputError(
                f"'{key}' names a path outside the project ({value}); pass such a path on the "
                "command line with --set or --params if you mean it",
                path=params_file.path,
            )


def parse_set(items) -> dict:
    """Parse ``key=value`` strings; values are YAML 1.2 (``010`` -> 10, ``1e-3`` -> 0.001,
    ``true`` -> True, ``[a, b]`` -> list); a value that is not YAML at all is taken as text."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"expected key=value, got '{item}'", where="--set")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise InputError(f"empty key in '{item}'", where="--set")
        if not v.strip():
            out[k] = ""
            continue
        try:
            out[k] = yaml_value(v)
        except (RefusedYAML, yaml.constructor.ConstructorError) as e:
            raise InputError(getattr(e, "problem", None) or str(e), path="--set", where=k) from None
        except yaml.YAMLError:
            out[k] = v
    return out


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
