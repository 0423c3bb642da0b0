"""Read, validate and merge ``config/params.yml``.

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

The defaults are the schema: every key that a profile or ``--set`` names must exist in the
defaults, and its value must have the default's type (an int is accepted where a float is
expected; a default of ``null`` accepts any scalar). A notebook sees ``global`` merged with its
own block (its own block wins), then the profile's overrides, then command-line ``--set``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import yaml

from helpers.engine.errors import InputError

TOP_KEYS = {"global", "notebooks", "profiles"}


def _type_name(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "mapping"
    return type(v).__name__


def _check_value(default, value, key: str, where: str):
    """Raise InputError unless ``value`` may replace ``default``."""
    td, tv = _type_name(default), _type_name(value)
    if td == "null" or tv == td:
        pass
    elif td == "float" and tv == "int":
        pass
    elif tv == "null" and td in {"str", "list", "mapping"}:
        pass  # optional text/list/mapping may be switched off with null
    else:
        raise InputError(f"'{key}' must be {td} (like its default {default!r}), got {tv} {value!r}", where=where)
    if td == "mapping" and tv == "mapping" and default:  # an empty default mapping takes any keys (label maps)
        for k, v in value.items():
            if k not in default:
                raise InputError(f"unknown key '{key}.{k}' (known: {', '.join(sorted(default))})", where=where)
            _check_value(default[k], v, f"{key}.{k}", where)


def _load_yaml(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("config file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a config file", path=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start})", path=path) from None
    try:
        data = yaml.safe_load(text)  # safe loader: nothing in the config is evaluated
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise InputError(f"not valid YAML ({getattr(e, 'problem', e)})", path=path, where=where) from None
    if not isinstance(data, dict):
        raise InputError("top level must be a mapping with 'global' and 'notebooks'", path=path)
    return data


class Params:
    """The validated parameter file."""

    def __init__(self, path):
        self.path = Path(path)
        data = _load_yaml(self.path)
        unknown = set(data) - TOP_KEYS
        if unknown:
            raise InputError(f"unknown top-level key '{sorted(unknown)[0]}' (allowed: global, notebooks, profiles)", path=self.path)
        self.global_ = data.get("global") or {}
        self.notebooks = data.get("notebooks") or {}
        self.profiles = data.get("profiles") or {}
        for name, block in [("global", self.global_), ("notebooks", self.notebooks), ("profiles", self.profiles)]:
            if not isinstance(block, dict):
                raise InputError(f"'{name}' must be a mapping", path=self.path)
        for nb, block in self.notebooks.items():
            if not isinstance(block, dict):
                raise InputError(f"'notebooks.{nb}' must be a mapping", path=self.path)
        for prof, over in self.profiles.items():
            self._check_override(over, f"profiles.{prof}")

    # -- validation -------------------------------------------------------------------------
    def _check_override(self, over, where):
        if over is None:
            return
        if not isinstance(over, dict):
            raise InputError(f"'{where}' must be a mapping", path=self.path)
        for k in over:
            if k not in ("global", "notebooks"):
                raise InputError(f"unknown key '{where}.{k}' (allowed: global, notebooks)", path=self.path)
        for k, v in (over.get("global") or {}).items():
            if k not in self.global_:
                raise InputError(f"unknown key '{where}.global.{k}'", path=self.path)
            _check_value(self.global_[k], v, f"{where}.global.{k}", str(self.path))
        for nb, block in (over.get("notebooks") or {}).items():
            if nb not in self.notebooks:
                raise InputError(f"unknown notebook '{where}.notebooks.{nb}'", path=self.path)
            for k, v in (block or {}).items():
                if k not in self.notebooks[nb]:
                    raise InputError(f"unknown key '{where}.notebooks.{nb}.{k}'", path=self.path)
                _check_value(self.notebooks[nb][k], v, f"{where}.notebooks.{nb}.{k}", str(self.path))

    def defaults_for(self, notebook: str) -> dict:
        if notebook not in self.notebooks:
            raise InputError(f"no block 'notebooks.{notebook}'", path=self.path)
        merged = copy.deepcopy(self.global_)
        merged.update(copy.deepcopy(self.notebooks[notebook]))
        return merged

    def effective(self, notebook: str, profile: str = "default", sets: dict | None = None,
                  uses: tuple | None = None) -> dict:
        """Parameters for ``notebook``: global + notebook block + profile + ``--set`` overrides.

        ``uses`` (from the chapter registry) names the global keys the notebook uses; the others
        are left out, so changing them does not touch the notebook's fingerprint. ``profile`` (the
        run's profile name) is a pseudo-global a notebook may declare.
        """
        params = self.defaults_for(notebook)
        if profile != "default":
            if profile not in self.profiles:
                raise InputError(f"unknown profile '{profile}' (known: default, {', '.join(sorted(self.profiles))})", path=self.path)
            over = self.profiles[profile] or {}
            _deep_update(params, over.get("global") or {})
            _deep_update(params, (over.get("notebooks") or {}).get(notebook) or {})
        params["profile"] = profile
        for key, value in (sets or {}).items():
            scope, _, name = key.rpartition(".")
            if scope and scope != notebook:
                continue  # a --set aimed at another notebook
            if name in params and name != "profile":
                _check_value(self.defaults_for(notebook)[name], value, key, "--set")
                if isinstance(value, dict) and isinstance(params[name], dict):
                    _deep_update(params[name], value)  # a mapping given with --set overrides only its keys
                else:
                    params[name] = copy.deepcopy(value)
        if uses is not None:
            own = set(self.notebooks[notebook])
            keep = set(uses) | own
            params = {k: v for k, v in params.items() if k in keep}
        return params

    def check_sets(self, sets: dict) -> None:
        """Every ``--set`` key must name a global key or ``<notebook>.<key>``."""
        for key, value in sets.items():
            scope, _, name = key.rpartition(".")
            if scope:
                if scope not in self.notebooks:
                    raise InputError(f"unknown notebook '{scope}' in --set {key}", where="--set")
                if name not in self.defaults_for(scope):
                    raise InputError(f"unknown key '{key}'", where="--set")
                _check_value(self.defaults_for(scope)[name], value, key, "--set")
            else:
                if name not in self.global_ and not any(name in b for b in self.notebooks.values()):
                    raise InputError(f"unknown key '{key}'", where="--set")
                if name in self.global_:
                    _check_value(self.global_[name], value, key, "--set")


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


def check_paths(params_file: "Params", root: Path) -> None:
    """Paths written in the parameter file must stay inside the project (``root``); a path
    elsewhere is accepted only from the command line (``--set``), where the user typed it."""
    root = Path(root).resolve()
    blocks = [("global", params_file.global_)] + [(f"notebooks.{k}", v) for k, v in params_file.notebooks.items()]
    blocks += [(f"profiles.{k}", v) for k, v in params_file.profiles.items()]
    for name, block in blocks:
        for key, value in _outside_paths(block or {}, name, root):
            raise InputError(f"'{key}' names a path outside the project ({value}); pass such a path on the "
                             "command line with --set if you mean it", path=params_file.path)


def _deep_update(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = copy.deepcopy(v)


def parse_set(items) -> dict:
    """Parse ``key=value`` strings; values are read as YAML scalars (``3`` -> int, ``true`` -> bool)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"expected key=value, got '{item}'", where="--set")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise InputError(f"empty key in '{item}'", where="--set")
        try:
            out[k] = yaml.safe_load(v) if v.strip() else ""
        except yaml.YAMLError:
            out[k] = v
    return out


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
