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
import unicodedata
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


#: what each status means, for the legend above the table
STATUS_MEANING = {
    "reproduced": "the measured value is the published one, or the paper's statement holds by its rule",
    "within tolerance": "off from the published value by no more than the claim's tolerance",
    "same direction": "the paper states a direction only, and the measured sign agrees",
    "differs": "outside the tolerance, of the other sign, or the statement does not hold",
    "not measured": "the chapter could not judge the claim on these data (the reason is in the row)",
}


def _whole(v: float) -> str:
    return f"{int(round(v)):,}"


def _number(v) -> str:
    v = float(v)
    return _whole(v) if v.is_integer() else f"{v:.3g}"


def format_value(kind: str, value, published: bool = False) -> str:
    """A published or measured value of a claim of kind ``kind`` (its ``compare``), in the one
    format of that kind:

    - counts (``exact``, ``tolerance``): a whole number with thousands separators (``1,359``),
      a fraction to three significant digits (``0.903``);
    - ``proportion``: ``k/n (p%)``, e.g. ``28/31 (90.3%)``, on both sides;
    - ``direction``: the published sign as ``positive``/``negative``, the measured statistic
      signed (``+2.25``);
    - ``qualitative``: ``holds`` / ``does not hold`` (never ``True``);
    - a missing value or a ``not measured: <reason>`` text: ``not measured``.

    Text that is none of these (a bug upstream, which :func:`judge` reports as *differs*) is
    shown as it is."""
    if _is_not_measured(value):
        return "not measured"
    if isinstance(value, bool):
        return "holds" if value else "does not hold"
    if kind == "proportion":
        kn = _kn(value)
        if kn is None:
            return str(value)
        k, n = kn
        return f"{k}/{n} ({100 * k / n:.1f}%)"
    if isinstance(value, str):
        return value
    if kind == "direction":
        v = float(value)
        if published:
            return "positive" if v > 0 else "negative"
        return f"{v:+.3g}" if v else "0"
    if kind == "qualitative":
        return str(value)
    return _number(value)


def _kind(compare: str) -> str:
    kind = str(compare).split(" ", 1)[0]
    if kind not in COMPARES:
        raise InputError(f"unknown compare {compare!r} in a scorecard row", where="scorecard")
    return kind


def view(card: pd.DataFrame, links: dict | None = None) -> pd.DataFrame:
    """The scorecard as a reader sees it: status first, then the paper item (a link to the
    chapter section that measures it when ``links`` maps the claim's id to an address, see
    :func:`section_links`), the statement, the published and the measured value in the format
    of their kind (:func:`format_value`), the measured value followed by the statistic behind
    it, and the rule."""
    from helpers.engine.report import Link

    kinds = [_kind(k) for k in card["compare"]]
    measured = []
    for kind, m, d in zip(kinds, card["measured"], card["detail"]):
        d = "" if _is_not_measured(d) else str(d)
        if _is_not_measured(m):
            reason = m.removeprefix("not measured").lstrip(": ") if isinstance(m, str) else ""
            measured.append(f"not measured: {reason or d}" if (reason or d) else "not measured")
        else:
            measured.append(format_value(kind, m) + (f" ({d})" if d else ""))
    links = links or {}
    items = [Link(i, links[c]) if c in links else i for c, i in zip(card["id"], card["item"])]
    return pd.DataFrame(
        {
            "status": card["status"],
            "item": items,
            "statement": card["statement"],
            "published": [format_value(k, p, published=True) for k, p in zip(kinds, card["published"])],
            "measured": measured,
            "rule": card["rule"],
        }
    )


def styled(card: pd.DataFrame, links: dict | None = None):
    """:func:`view` as the book shows tables (:func:`helpers.engine.report.show`: HTML-escaped,
    stable element ids, sortable and searchable), with the status cells coloured by
    :data:`STATUS_COLORS`. The table has the class ``helpers-scorecard``: ``book/_static/custom.css``
    stacks each row on narrow screens and wraps it in print."""
    from helpers.engine.report import show

    return (
        show(view(card, links), index=False, interactive=True, classes="helpers-scorecard")
        .map(lambda s: f"background-color: {STATUS_COLORS.get(s, '')}", subset=["status"])
        .set_properties(subset=["statement", "rule", "measured", "published"], **{"text-align": "left"})
    )


def legend_html(counts: dict | None = None) -> str:
    """The colour legend of the scorecard: one chip per status in its colour, with what it means
    (and, with ``counts``, how many rows have it)."""
    import html

    items = []
    for s in STATUSES:
        n = f" ({counts[s]})" if counts is not None and s in counts else ""
        items.append(
            f'<li><span class="helpers-chip" style="background-color: {STATUS_COLORS[s]}">{html.escape(s)}{n}</span> '
            f"{html.escape(STATUS_MEANING[s])}</li>"
        )
    return (
        '<ul class="helpers-legend" aria-label="What the colours of the status column mean">' + "".join(items) + "</ul>"
    )


# ----------------------------------------------------------------------------- links to chapters

_HEADING = re.compile(r"^(#{2,3})\s+(.+?)\s*#*\s*$")


def section_id(title: str) -> str | None:
    """The HTML id Sphinx gives a section titled ``title`` (docutils' ``make_id``: lower case,
    runs of other characters become one hyphen, leading digits and hyphens dropped), or None when
    the title holds markup whose rendered text cannot be known here (a role, a substitution)."""
    if re.search(r"[{}]", title):
        return None
    text = re.sub(r"[`*_]", "", title)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    ident = re.sub(r"[^a-z0-9]+", "-", text)
    ident = re.sub(r"^[^a-z]+", "", ident).rstrip("-")
    return ident or None


def _sections(source: str) -> list[tuple[str, str]]:
    """(title, text) of each ``##``/``###`` section of a MyST text notebook, code cells included
    in the text; the part before the first such heading (title, takeaways) is left out, since a
    claim mentioned there is measured further down."""
    out: list = []
    in_code = False
    for line in source.splitlines():
        if in_code:
            in_code = line.strip() != "```"
        elif line.startswith("```{code-cell}"):
            in_code = True
        else:
            m = _HEADING.match(line)
            if m:
                out.append((m.group(2), []))
                continue
        if out:
            out[-1][1].append(line)
    return [(title, "\n".join(lines)) for title, lines in out]


def section_links(claims: list[dict], steps, notebooks: Path, page_suffix: str = ".html") -> dict:
    """{claim id: address of the chapter section that measures it}, relative to a chapter page.

    The chapter is the registry step whose results folder is the claim's ``result``; the section
    is the first (``##`` or ``###``) one of its notebook that names the claim's id (as a word,
    in prose or code), else the first whose title names the claim's paper item (``Fig. 2B``),
    else the chapter's top. A claim whose folder no chapter writes gets no link."""
    by_item = {s.item: s.stem for s in steps}
    sources: dict = {}
    out = {}
    for c in claims:
        stem = by_item.get(c["result"])
        if stem is None:
            continue
        if stem not in sources:
            f = Path(notebooks) / f"{stem}.md"
            sources[stem] = _sections(f.read_text(encoding="utf-8")) if f.exists() else []
        word = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(c['id'])}(?![A-Za-z0-9_])")
        anchor = next((section_id(t) for t, body in sources[stem] if word.search(body) and section_id(t)), None)
        if anchor is None:
            anchor = next((section_id(t) for t, _ in sources[stem] if str(c["item"]) in t and section_id(t)), None)
        out[c["id"]] = f"{stem}{page_suffix}" + (f"#{anchor}" if anchor else "")
    return out
