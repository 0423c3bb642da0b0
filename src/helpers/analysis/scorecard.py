"""The reproduction scorecard: every claim of the paper (``data/paper/claims.yml``) against what
this run measured (``results/<item>/numbers.json``).

Comparisons (``compare`` in claims.yml):

- ``exact``: measured == published (cohort sizes);
- ``tolerance``: equal is *reproduced*, off by at most ``tolerance`` is *within tolerance*;
- ``proportion``: published as ``k/n`` (``28/31``); the same k and n is *reproduced*, a
  measured ``k/n`` within ``tolerance`` of the published proportion is *within tolerance*;
- ``direction``: the measured sign equals the published one (+1 / -1): *same direction*;
- ``qualitative``: a rule of :mod:`helpers.analysis.claims` decided true/false in its chapter;
  true (= published) is *reproduced*. The chapter also records the rule in words
  (``<id>_rule``) and the statistic behind it (``<id>_detail``).

A claim is *not measured* when no chapter wrote its id, or the chapter wrote "not measured:
<reason>" (a data limitation, e.g. no GO term enriched). Anything else that cannot be judged
(a qualitative claim measured as a number, a proportion that is not ``k/n``) is a bug and raises.
"""

from __future__ import annotations

import json
import math
import re
import string
from fractions import Fraction
from pathlib import Path

import pandas as pd
import yaml

from helpers.engine.errors import InputError

COMPARES = ("exact", "tolerance", "proportion", "direction", "qualitative")
REQUIRED = ("id", "item", "result", "statement", "published", "compare")
STATUSES = ("reproduced", "within tolerance", "same direction", "differs", "not measured")
STATUS_COLORS = {
    "reproduced": "#cfe8f7",
    "within tolerance": "#d9f0e3",
    "same direction": "#fdf1c7",
    "differs": "#f9d3c0",
    "not measured": "#e6e6e6",
}
_KN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def _kn(value) -> tuple[int, int] | None:
    m = _KN.match(value) if isinstance(value, str) else None
    if not m or int(m.group(2)) == 0 or int(m.group(1)) > int(m.group(2)):
        return None
    return int(m.group(1)), int(m.group(2))


def parse_proportion(value, where: str = "proportion") -> tuple[int, int]:
    """``"28/31"`` -> (28, 31); anything else (or k > n, n = 0) is an InputError."""
    kn = _kn(value)
    if kn is None:
        raise InputError(f"expected a proportion 'k/n' with 0 <= k <= n, n > 0, got {value!r}", where=where)
    return kn


def _template_fields(rule: str) -> set:
    return {f for _, f, _, _ in string.Formatter().parse(rule) if f}


def load_claims(path) -> list[dict]:
    """Read and validate the claims file (one-line errors naming the claim and field)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError("claims file not found", path=path) from None
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML ({getattr(e, 'problem', e)})", path=path) from None
    claims = (data or {}).get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list) or not claims:
        raise InputError("expected a non-empty list under 'claims'", path=path)
    seen = set()
    for i, c in enumerate(claims, 1):
        where = f"claim {i}"
        if not isinstance(c, dict):
            raise InputError("each claim must be a mapping", path=path, where=where)
        for f in REQUIRED:
            if f not in c:
                raise InputError(f"missing field '{f}'", path=path, where=f"{where} ({c.get('id', '?')})")
        if c["id"] in seen:
            raise InputError(f"duplicated id '{c['id']}'", path=path, where=where)
        seen.add(c["id"])
        kind = c["compare"]
        if kind not in COMPARES:
            raise InputError(f"compare must be one of {', '.join(COMPARES)}, not '{kind}'", path=path, where=c["id"])
        if kind in ("tolerance", "proportion") and not isinstance(c.get("tolerance"), (int, float)):
            raise InputError(f"a {kind} claim needs a numeric 'tolerance'", path=path, where=c["id"])
        if kind == "proportion":
            if _kn(c["published"]) is None:
                raise InputError(
                    f"'published' must be a proportion 'k/n' (like 28/31), got {c['published']!r}",
                    path=path,
                    where=c["id"],
                )
        if kind == "direction" and c["published"] not in (1, -1):
            raise InputError("a direction claim's 'published' must be 1 or -1", path=path, where=c["id"])
        if kind == "qualitative":
            if c["published"] is not True:
                raise InputError("a qualitative claim's 'published' must be true", path=path, where=c["id"])
            if not isinstance(c.get("rule"), str) or not c["rule"].strip():
                raise InputError("a qualitative claim needs its 'rule' in words", path=path, where=c["id"])
        params = c.get("params", {})
        if not isinstance(params, dict) or not all(isinstance(v, str) and "." in v for v in params.values()):
            raise InputError("'params' must map rule fields to parameter keys 'chapter.key'", path=path, where=c["id"])
        if isinstance(c.get("rule"), str):
            unknown = set(params) - _template_fields(c["rule"])
            if unknown:
                raise InputError(
                    f"'params' names {sorted(unknown)[0]!r}, which the rule does not use", path=path, where=c["id"]
                )
    return claims


def _claims(claims=None, path=None) -> list[dict]:
    if claims is not None:
        return claims
    from helpers.engine.paths import PAPER

    return load_claims(path or PAPER / "claims.yml")


def claim_by_id(claim_id: str, claims: list[dict] | None = None) -> dict:
    """One claim of ``claims`` (default: the shipped claims.yml)."""
    for c in _claims(claims):
        if c["id"] == claim_id:
            return c
    raise InputError(f"no claim with id {claim_id!r}", path="data/paper/claims.yml")


def published(ids, path=None) -> dict:
    """The published values of the claims ``ids`` (from ``data/paper/claims.yml``)."""
    claims = {c["id"]: c["published"] for c in _claims(path=path)}
    missing = [i for i in ids if i not in claims]
    if missing:
        raise InputError(f"no claim with id {missing[0]!r}", path=path or "data/paper/claims.yml")
    return {i: claims[i] for i in ids}


def _compare_rule(c: dict) -> str:
    kind, pub = c["compare"], c["published"]
    if kind == "exact":
        return f"measured = {pub}"
    if kind == "tolerance":
        return f"= {pub:g}: reproduced; |measured − {pub:g}| ≤ {c['tolerance']:g}: within tolerance"
    if kind == "proportion":
        k, n = parse_proportion(pub)
        off = math.floor(c["tolerance"] * n + 1e-9)
        return (
            f"{k}/{n}: reproduced; |measured − {k / n:.3f}| ≤ {c['tolerance']:g} "
            f"(up to {off} of {n} off): within tolerance"
        )
    if kind == "direction":
        return f"sign of measured is {'+' if pub > 0 else '−'}"
    return c["rule"]


def rule_text(claim: dict, params: dict | None = None) -> str:
    """A claim's rule in words. Qualitative rules are templates (``{min_share}``) filled with the
    values a chapter used (``params``); unfilled when ``params`` is None. The parameter keys the
    claim names in claims.yml follow in brackets (their values are in the filled text)."""
    text = claim.get("rule") or _compare_rule(claim)
    if params is not None and claim.get("rule"):
        try:
            text = text.format(**params)
        except (KeyError, IndexError, ValueError) as e:
            raise InputError(
                f"rule template cannot be filled ({type(e).__name__}: {e})",
                path="data/paper/claims.yml",
                where=claim["id"],
            ) from None
    names = claim.get("params") or {}
    if names:
        text += f" [{', '.join(names.values())}]"
    return text


def _is_not_measured(measured) -> bool:
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return True
    return isinstance(measured, str) and measured.startswith("not measured")


def judge(claim: dict, measured) -> str:
    """Status of one claim given the measured value (see the module docstring)."""
    if _is_not_measured(measured):
        return "not measured"
    kind, pub = claim["compare"], claim["published"]
    if kind == "qualitative":
        if not isinstance(measured, bool):
            raise InputError(f"a qualitative claim is measured as true/false, got {measured!r}", where=claim["id"])
        return "reproduced" if measured == bool(pub) else "differs"
    if kind == "proportion":
        k, n = parse_proportion(measured, where=claim["id"])
        pk, pn = parse_proportion(pub, where=claim["id"])
        if (k, n) == (pk, pn):
            return "reproduced"
        diff = abs(Fraction(k, n) - Fraction(pk, pn))
        return "within tolerance" if diff <= Fraction(str(claim["tolerance"])) else "differs"
    if isinstance(measured, (bool, str)):
        return "differs"
    if kind == "exact":
        return "reproduced" if measured == pub else "differs"
    if kind == "tolerance":
        diff = abs(float(measured) - float(pub))
        if math.isclose(float(measured), float(pub), rel_tol=0, abs_tol=1e-12):
            return "reproduced"
        return "within tolerance" if diff <= float(claim["tolerance"]) + 1e-12 else "differs"
    # direction
    m = float(measured)
    return "same direction" if m != 0 and math.copysign(1, m) == math.copysign(1, pub) else "differs"


def read_numbers(results: Path) -> dict:
    """All ``numbers.json`` under ``results``: {item: {key: value}}."""
    out = {}
    for p in sorted(Path(results).glob("*/numbers.json")):
        try:
            out[p.parent.name] = json.loads(p.read_text())
        except ValueError:
            raise InputError("not valid JSON", path=p) from None
    return out


def scorecard(claims: list[dict], numbers: dict) -> pd.DataFrame:
    """One row per claim: id, item, statement, published, measured, detail, compare, rule, status.

    ``rule`` is the chapter's recorded rule (``<id>_rule``, filled with the parameters it used) or,
    when the chapter did not record one, the rule from claims.yml; ``detail`` is the statistic
    behind a qualitative verdict (``<id>_detail``) or the reason it was not measured."""
    rows = []
    for c in claims:
        got = numbers.get(c["result"], {})
        measured = got.get(c["id"])
        detail = got.get(f"{c['id']}_detail", "")
        if measured is None:
            detail = f"no value for {c['id']!r} in results/{c['result']}/numbers.json"
        rows.append(
            {
                "id": c["id"],
                "item": c["item"],
                "statement": c["statement"],
                "published": c["published"],
                "measured": measured,
                "detail": detail,
                "compare": c["compare"] + (f" (±{c['tolerance']:g})" if "tolerance" in c else ""),
                "rule": got.get(f"{c['id']}_rule") or rule_text(c),
                "status": judge(c, measured),
            }
        )
    return pd.DataFrame(rows)


def summary(card: pd.DataFrame) -> dict:
    """Counts per status (every status present, zeros included)."""
    counts = card["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in STATUSES}


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def view(card: pd.DataFrame) -> pd.DataFrame:
    """The scorecard as a reader sees it: status first, values as short text, the measured value
    followed by the statistic behind it."""
    measured = [
        (_fmt(m) + (f" ({d})" if d and not _is_not_measured(m) else "")) if m is not None else ""
        for m, d in zip(card["measured"], card["detail"])
    ]
    measured = [m if m else d for m, d in zip(measured, card["detail"])]
    return pd.DataFrame(
        {
            "status": card["status"],
            "item": card["item"],
            "statement": card["statement"],
            "published": card["published"].map(_fmt),
            "measured": measured,
            "rule": card["rule"],
        }
    )


def styled(card: pd.DataFrame):
    """:func:`view` as the book shows tables (:func:`helpers.engine.report.show`: HTML-escaped,
    stable element ids), with the status cells coloured by :data:`STATUS_COLORS`."""
    from helpers.engine.report import show

    return (
        show(view(card), index=False)
        .map(lambda s: f"background-color: {STATUS_COLORS.get(s, '')}", subset=["status"])
        .set_properties(subset=["statement", "rule", "measured"], **{"text-align": "left"})
        .set_properties(subset=["statement"], **{"min-width": "18em"})
        .set_properties(subset=["rule"], **{"min-width": "16em"})
        .set_properties(subset=["status", "item"], **{"white-space": "nowrap"})
    )
