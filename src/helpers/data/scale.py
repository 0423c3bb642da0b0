"""Is a table on the scale it claims? Stated rules for count tables and log-expression tables.

A table read as ``kind: counts`` must hold read counts; one read as ``kind: logexpr`` must hold
log-scale expression (log2 intensities of arrays, log2-CPM, VST, ...). Getting the kind wrong
does not fail anywhere downstream, it gives wrong answers (edgeR on log values, a t-test on
counts x 1000, the published model calling raw counts "NR" with probability 1e-160), so the
readers check it up front with these rules (all constants below are module-level and named):

Counts that look like log values (:func:`counts_problem`)
    *Non-integers* are already refused by the count reader, cell by cell. *Integer-rounded log
    values*: the table holds at least :data:`MIN_VALUES` values, all of them below
    :data:`ROUNDED_LOG_MAX` (25), and its largest value is less than :data:`ROUNDED_LOG_RATIO`
    (10) times the median of its non-zero values. Read counts span orders of magnitude: any
    library of a transcriptome-wide table has genes with hundreds or thousands of reads, and
    the largest count is hundreds to thousands of times the median non-zero count; log2 values
    are squeezed into 0..~20 and their largest value is 2-5 times the median one (rounded
    log2-CPM of a simulated 2,000-gene cohort: max 16, median 5, ratio 3.2).

Log values that look like counts (:func:`logexpr_problem`)
    Any value above :data:`LOG_MAX` (100): a log2 value of 100 would be 2^100 reads, so such a
    table is on a linear scale (counts, FPKM, MAS5 intensities), whatever its size. Or, with at
    least :data:`MIN_VALUES` values, a maximum above :data:`LOG_SOFT_MAX` (30, i.e. 2^30, a
    billion) together with a right skew (sample skewness above :data:`SKEW_MAX`, 2): log values
    are roughly symmetric (skewness of log2 arrays or log-CPM about -1..1.5), linear expression
    is strongly right-skewed (skewness of NB counts 10-30).

Tables with fewer than :data:`MIN_VALUES` values are judged only by the decisive rule (a value
above 100 on a log scale), since a median and a skewness of a handful of cells say little.

Scorer input (a table handed to a frozen model) is checked by
:func:`helpers.analysis.model.check_log2_scale`, on the signature rows it scores.
"""

from __future__ import annotations

import numpy as np

#: Fewest values a table needs before the distribution-based rules judge it.
MIN_VALUES = 1000
#: Integer-valued tables whose values all stay below this look like rounded log values ...
ROUNDED_LOG_MAX = 25
#: ... when their maximum is also less than this multiple of the median non-zero value.
ROUNDED_LOG_RATIO = 10.0
#: A log-scale value above this is impossible (2^100); the table is linear.
LOG_MAX = 100.0
#: Above this maximum (2^30) a log table must not be right-skewed ...
LOG_SOFT_MAX = 30.0
#: ... beyond this sample skewness.
SKEW_MAX = 2.0


def describe(values) -> dict:
    """Summary used by the rules: n, min, max, position of the max (flat index), share of
    integers, median of the non-zero values, max / that median, sample skewness (biased,
    Fisher-Pearson, as ``scipy.stats.skew``). Non-finite values are ignored."""
    v = np.asarray(values, dtype=float)
    flat = v.ravel()
    ok = np.isfinite(flat)
    x = flat[ok]
    out = {"n": int(x.size)}
    if x.size == 0:
        return {
            **out,
            "min": np.nan,
            "max": np.nan,
            "argmax": None,
            "integer_share": np.nan,
            "median_nonzero": np.nan,
            "max_over_median": np.nan,
            "skewness": np.nan,
        }
    idx = np.flatnonzero(ok)[int(np.argmax(x))]
    nz = x[x != 0]
    med = float(np.median(np.abs(nz))) if nz.size else 0.0
    sd = float(x.std())
    skew = float(((x - x.mean()) ** 3).mean() / sd**3) if sd > 0 else 0.0
    vmax = float(x.max())
    return {
        **out,
        "min": float(x.min()),
        "max": vmax,
        "argmax": tuple(int(i) for i in np.unravel_index(idx, v.shape)) if v.ndim else None,
        "integer_share": float(np.mean(x == np.round(x))),
        "median_nonzero": med,
        "max_over_median": (vmax / med) if med > 0 else np.inf,
        "skewness": skew,
    }


def counts_problem(values) -> str | None:
    """Why a table read as counts looks like integer-rounded log values, or None (module doc)."""
    d = describe(values)
    if d["n"] < MIN_VALUES or d["integer_share"] < 1.0:
        return None
    if d["max"] < ROUNDED_LOG_MAX and d["max_over_median"] < ROUNDED_LOG_RATIO:
        return (
            f"every value is an integer below {ROUNDED_LOG_MAX} (max {d['max']:g}) and the largest is only "
            f"{d['max_over_median']:.1f} times the median non-zero value: these look like integer-rounded "
            f"log values, not read counts (read counts reach hundreds of times their median)"
        )
    return None


def logexpr_problem(values) -> str | None:
    """Why a table read as log-expression looks like counts or linear values, or None (module doc)."""
    d = describe(values)
    if d["n"] == 0:
        return None
    if d["max"] > LOG_MAX:
        return (
            f"a value of {d['max']:g} is impossible on a log scale (log2 values stay below ~20; "
            f"{LOG_MAX:g} would be 2^{LOG_MAX:g}): these look like counts or linear intensities"
        )
    if d["n"] >= MIN_VALUES and d["max"] > LOG_SOFT_MAX and d["skewness"] > SKEW_MAX:
        return (
            f"values reach {d['max']:g} and are right-skewed (skewness {d['skewness']:.1f} > {SKEW_MAX:g}; "
            f"log values are roughly symmetric): these look like counts or linear intensities"
        )
    return None
