"""The reproduction scorecard: every claim of the paper (``data/paper/claims.yml``) against what
this run measured (``results/<item>/numbers.json``).

Statuses:

- ``reproduced``: an exact claim matches, a tolerance claim matches exactly, or a qualitative
  claim holds;
- ``within tolerance``: a tolerance claim is off by no more than its tolerance;
- ``same direction``: a direction claim has the published sign;
- ``differs``: none of the above;
- ``not measured``: no notebook wrote the claim's id (for example a chapter that did not run).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml

from helpers.engine.errors import InputError

COMPARES = ("exact", "tolerance", "direction", "qualitative")
REQUIRED = ("id", "item", "result", "statement", "published", "compare")
STATUSES = ("reproduced", "within tolerance", "same direction", "differs", "not measured")


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
        if c["compare"] not in COMPARES:
            raise InputError(f"compare must be one of {', '.join(COMPARES)}, not '{c['compare']}'", path=path, where=c["id"])
        if c["compare"] == "tolerance" and not isinstance(c.get("tolerance"), (int, float)):
            raise InputError("a tolerance claim needs a numeric 'tolerance'", path=path, where=c["id"])
        if c["compare"] == "direction" and c["published"] not in (1, -1):
            raise InputError("a direction claim's 'published' must be 1 or -1", path=path, where=c["id"])
    return claims


def published(ids, path=None) -> dict:
    """The published values of the claims ``ids`` (from ``data/paper/claims.yml``)."""
    from helpers.engine.paths import PAPER

    claims = {c["id"]: c["published"] for c in load_claims(path or PAPER / "claims.yml")}
    missing = [i for i in ids if i not in claims]
    if missing:
        raise InputError(f"no claim with id {missing[0]!r}", path=path or PAPER / "claims.yml")
    return {i: claims[i] for i in ids}


def judge(claim: dict, measured) -> str:
    """Status of one claim given the measured value (``None``: not measured)."""
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return "not measured"
    kind, pub = claim["compare"], claim["published"]
    if kind == "qualitative":
        return "reproduced" if bool(measured) == bool(pub) else "differs"
    if isinstance(measured, (bool, str)):
        return "differs"
    if kind == "exact":
        return "reproduced" if measured == pub else "differs"
    if kind == "tolerance":
        diff = abs(float(measured) - float(pub))
        if diff == 0 or math.isclose(float(measured), float(pub), rel_tol=0, abs_tol=1e-12):
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
    """One row per claim: id, item, statement, published, measured, compare, status."""
    rows = []
    for c in claims:
        measured = numbers.get(c["result"], {}).get(c["id"])
        rows.append({
            "id": c["id"], "item": c["item"], "statement": c["statement"],
            "published": c["published"], "measured": measured,
            "compare": c["compare"] + (f" (±{c['tolerance']:g})" if c["compare"] == "tolerance" else ""),
            "status": judge(c, measured),
        })
    return pd.DataFrame(rows)


def summary(card: pd.DataFrame) -> dict:
    """Counts per status (every status present, zeros included)."""
    counts = card["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in STATUSES}
