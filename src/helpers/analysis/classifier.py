"""What the classifier chapters do (Fig. 4, Table 1): train pamr-style nearest shrunken
centroids and choose the threshold (:func:`select`), report the frozen model as the paper's
Table 1 (:func:`signature_table`, built from the same :class:`helpers.analysis.model.Model` that
``pam_model.json`` holds), and report performance as counts ``k/n`` beside the paper's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.analysis.model import Model, score
from helpers.engine.errors import InputError
from helpers.engine.report import md_code, md_text, tex_label
from helpers.methods import pam

METRICS = ("accuracy", "sensitivity", "specificity")


#: What the PAM claims say when no threshold that keeps a gene beats the null classifier.
NO_SIGNATURE = "not measured: no signature (the null classifier has the fewest CV errors)"


@dataclass(frozen=True)
class Selection:
    """A trained fit, its cross-validation over the threshold grid, the chosen threshold, the
    cross-validated calls at that threshold and the genes it keeps.

    ``rule_threshold`` is where pamr's rule (largest threshold with the fewest CV errors) lands;
    ``threshold`` differs from it when that threshold keeps no gene (see :func:`select`), and is
    None when there is no signature (``genes`` empty). ``null_errors``: CV errors of the null
    classifier (no gene, calls by the priors alone, same folds); ``note``: one line for the page,
    '' when pamr's rule was followed as it is; ``folds``: the CV that ran ("loo" or k,
    :func:`helpers.methods.pam.cv_scheme`)."""

    fit: pam.PamFit
    curve: pd.DataFrame  # threshold, n_genes, cv_errors, cv_error_rate, train_errors
    threshold: float | None
    loo: pd.DataFrame  # per sample: pred (and class probabilities)
    genes: list
    rule_threshold: float | None = None
    null_errors: int | None = None
    note: str = ""
    folds: object = "loo"

    @property
    def has_signature(self) -> bool:
        return bool(self.genes)


def null_cv_errors(y, classes, prior=None, folds=None) -> int:
    """Cross-validation errors of the null classifier, which uses no gene: each held-out sample is
    called the class with the largest prior, the priors being ``prior`` (fixed, in ``classes``
    order) or the class proportions of the training part (leave-one-out when ``folds`` is None,
    else the samples outside the sample's fold, ``folds`` a list of index arrays); a tie goes to
    the first class in ``classes`` (the discriminant's argmin over ``-2 log pi_k``)."""
    y = np.asarray(y).astype(str)
    classes = [str(c) for c in classes]
    counts = np.array([(y == c).sum() for c in classes], dtype=float)
    if folds is None:
        folds = [[i] for i in range(len(y))]
    errors = 0
    for f in folds:
        held = y[np.asarray(f, dtype=int)]
        if prior is None:
            pr = counts - np.array([(held == c).sum() for c in classes], dtype=float)
        else:
            pr = np.asarray(prior, dtype=float)
        errors += int((held != classes[int(np.argmax(pr))]).sum())
    return errors


def nonempty_threshold(curve: pd.DataFrame, null_errors: int) -> int | None:
    """Row of ``curve`` (threshold, n_genes, cv_errors) to use when pamr's rule lands on a
    threshold that keeps no gene: the largest threshold with the fewest CV errors among those
    that keep at least one gene, provided those errors are below ``null_errors``; None (no
    signature) otherwise."""
    keep = curve[curve["n_genes"] > 0]
    if keep.empty:
        return None
    best = int(keep["cv_errors"].min())
    if best >= int(null_errors):
        return None
    return int(keep.loc[keep["cv_errors"] == best, "threshold"].idxmax())


def select(
    X: pd.DataFrame,
    y,
    *,
    n_threshold: int = 30,
    s0_percentile: float = 50.0,
    prior=None,
    classes=None,
    target_n_genes: int | None = None,
    folds="loo",
    seed: int = 0,
) -> Selection:
    """pamr's workflow: train over a threshold grid, cross-validate every threshold (``pamr.cv``),
    take the largest threshold with the fewest CV errors, or, with ``target_n_genes``, the
    threshold that keeps that many genes (then the CV is rerun at that one threshold, same folds).
    ``folds``/``seed``: the CV (:func:`helpers.methods.pam.cv_scheme`: "loo", "auto" or k balanced
    folds drawn from ``seed``); leave-one-out by default, as the paper.

    When pamr's rule lands on a threshold that keeps no gene, the chosen threshold is the
    largest with the fewest CV errors that keeps at least one gene, if those errors are below the
    null classifier's (:func:`null_cv_errors`); otherwise there is no signature (``threshold``
    None, ``genes`` empty, ``loo`` the calls at pamr's threshold). ``note`` says which."""
    fit = pam.train(X, y, n_threshold=n_threshold, s0_percentile=s0_percentile, prior=prior, classes=classes)
    cvres = pam.cv(X, y, fit, folds=folds, seed=seed)
    scheme = "loo" if all(len(f) == 1 for f in cvres.folds) else len(cvres.folds)
    curve = cvres.table().assign(train_errors=fit.train_errors)
    idx, thr = pam.choose_threshold(cvres)
    rule_thr = float(thr)
    null_err = null_cv_errors(
        cvres.truth.to_numpy(), fit.classes, prior, folds=None if scheme == "loo" else cvres.folds
    )
    note = ""
    if target_n_genes is not None:
        thr = pam.threshold_for_n_genes(fit, int(target_n_genes))
        at = pam.cv(
            X,
            y,
            fit=None,
            folds=cvres.folds,
            thresholds=[thr],
            prior=prior,
            classes=classes,
            s0_percentile=s0_percentile,
        )
        loo = at.predictions(0)
    else:
        if not pam.surviving_genes(fit, thr):
            alt = nonempty_threshold(curve, null_err)
            lands = (
                f"pamr's rule (largest threshold with the fewest CV errors, {int(curve['cv_errors'].min())}) "
                f"lands on threshold {rule_thr:.4g}, which keeps no gene"
            )
            if alt is None:
                note = (
                    f"{lands}; no threshold that keeps a gene has fewer CV errors than the null classifier "
                    f"({null_err}): no signature"
                )
                return Selection(
                    fit=fit,
                    curve=curve,
                    threshold=None,
                    loo=cvres.predictions(idx),
                    genes=[],
                    rule_threshold=rule_thr,
                    null_errors=null_err,
                    note=note,
                    folds=scheme,
                )
            idx, thr = alt, float(cvres.thresholds[alt])
            note = (
                f"{lands}; chosen instead: the largest threshold with the fewest CV errors that keeps at "
                f"least one gene, {thr:.4g} ({int(curve['n_genes'].iloc[alt])} genes, "
                f"{int(curve['cv_errors'].iloc[alt])} CV errors; null classifier {null_err})"
            )
        loo = cvres.predictions(idx)
    return Selection(
        fit=fit,
        curve=curve,
        threshold=float(thr),
        loo=loo,
        genes=pam.surviving_genes(fit, thr),
        rule_threshold=rule_thr,
        null_errors=null_err,
        note=note,
        folds=scheme,
    )


def cv_sentence(scheme, requested, n: int) -> str:
    """One sentence for the page: which cross-validation ran and why (``scheme``: "loo" or k,
    what :func:`helpers.methods.pam.cv_scheme` made of ``requested`` for ``n`` samples)."""
    what = pam.cv_description(scheme)
    if requested == "auto":
        rule = (
            f"`folds: auto` runs leave-one-out up to {pam.AUTO_LOO_MAX_N} patients, as the paper did, and "
            f"{pam.AUTO_K}-fold above, where a nested leave-one-out (one inner cross-validation per patient) would "
            f"cost about n/{pam.AUTO_K} times as much and {pam.AUTO_K}-fold estimates nearly the same error"
        )
        return f"{what}: {n} patients; {rule}"
    return f"{what}: set by `folds: {requested}` ({n} patients)"


def cv_label(scheme) -> str:
    """Short name of a CV for table rows: "LOOCV" or "10-fold CV"."""
    return "LOOCV" if scheme == "loo" else f"{int(scheme)}-fold CV"


def cv_texts(scheme, requested, n: int) -> dict:
    """The page's words for the CV that ran: ``cv_name`` ("leave-one-out" or "10-fold (balanced
    per class)"), ``cv_scheme_text`` (:func:`cv_sentence`) and ``nested_inner_text`` (how the
    nested CV picks the threshold inside each outer fold)."""
    if scheme == "loo":
        inner = f"an inner leave-one-out on the other {n - 1} patients only"
    else:
        inner = (
            f"an inner {int(scheme)}-fold cross-validation (balanced per class) on the patients outside "
            "the outer fold only"
        )
    return {
        "cv_name": pam.cv_description(scheme),
        "cv_scheme_text": cv_sentence(scheme, requested, n),
        "nested_inner_text": inner,
    }


def not_measured_numbers(ids, reason: str) -> dict:
    """``{id: reason}`` for claim ids a chapter cannot measure; ``reason`` must start with
    "not measured" (what the scorecard reads as not measured)."""
    if not str(reason).startswith("not measured"):
        raise ValueError(f"a not-measured reason must start with 'not measured', got {reason!r}")
    return {i: str(reason) for i in ids}


def signature_table(model: Model, sort_by_difference: bool = False) -> pd.DataFrame:
    """Table 1 of a frozen model: per gene the shrunken centroid of every class and ``s_i + s0``
    (``Model.sd``, which is ``PamFit.sd``: s0 is already in it). With ``sort_by_difference`` the
    genes with the largest |centroid difference| between the first two classes come first (ties
    by name), as the paper's Table 1."""
    t = model.centroids.add_prefix("centroid_").assign(sd_si_plus_s0=model.sd).rename_axis("gene").reset_index()
    if sort_by_difference:
        a, b = (f"centroid_{c}" for c in model.classes[:2])
        t = (
            t.assign(_diff=(t[a] - t[b]).abs())
            .sort_values(["_diff", "gene"], ascending=[False, True], kind="mergesort")
            .drop(columns="_diff")
            .reset_index(drop=True)
        )
    return t


def priors_text(model: Model) -> str:
    """ "CR 0.710, NR 0.290; expression scale: `...`." for the model page."""
    return (
        ", ".join(f"{md_text(c)} {model.priors[c]:.3f}" for c in model.classes)
        + f"; expression scale: {md_code(model.scale)}."
    )


def overlap(genes, reference) -> tuple[int, str]:
    """How many of ``reference`` (the paper's 14) are among ``genes``, and a sentence naming them."""
    shared = sorted(set(genes) & set(reference))
    return len(shared), ("shared: " + ", ".join(shared)) if shared else "no gene in common"


def performance_numbers(perf: dict, prefix: str, baseline: bool = True) -> dict:
    """The numbers a chapter records for a :func:`helpers.methods.pam.performance` result:
    ``<prefix>_<metric>`` as the count ``k/n`` (what the scorecard compares), ``..._value`` the
    proportion and ``..._ci`` its exact 95% interval, for accuracy, sensitivity and specificity,
    plus (``baseline``) the majority-class baseline."""
    out = {}
    for m in METRICS:
        lo, hi = perf[f"{m}_ci"]
        out[f"{prefix}_{m}"] = perf[f"{m}_text"]
        out[f"{prefix}_{m}_value"] = round(float(perf[m]), 4)
        out[f"{prefix}_{m}_ci"] = f"{100 * lo:.1f}-{100 * hi:.1f}%"
    if baseline:
        out["majority_baseline"] = round(float(perf["majority_baseline"]), 4)
        out["majority_baseline_text"] = f"{int(round(perf['majority_baseline'] * perf['n']))}/{perf['n']}"
    return out


def _pct(kn: str) -> str:
    k, n = (int(v) for v in kn.split("/"))
    return f"{100 * k / n:.1f}% ({kn})" if n else kn


def paper_comparison(perf: dict, paper: dict) -> pd.DataFrame:
    """Accuracy, sensitivity and specificity of this run beside the paper's (``paper``: metric ->
    "k/n", from claims.yml), with this run's exact 95% intervals."""
    rows = []
    for m in METRICS:
        if m not in paper:
            raise InputError(f"no published value for {m!r}", where="paper_comparison")
        lo, hi = perf[f"{m}_ci"]
        rows.append(
            {
                "measure": m,
                "paper": _pct(paper[m]),
                "this run": _pct(perf[f"{m}_text"]),
                "95% CI (this run)": f"{100 * lo:.1f}-{100 * hi:.1f}%",
            }
        )
    return pd.DataFrame(rows).set_index("measure")


def honesty_table(perf: dict, nested_perf: dict | None, cv_label: str = "LOOCV") -> pd.DataFrame:
    """Naive CV (threshold chosen on the same errors), nested CV (if run) and the majority-class
    baseline: correct calls and accuracy. ``cv_label`` names the CV ("LOOCV", "10-fold CV")."""
    rows = [
        {
            "evaluation": f"naive {cv_label} (threshold chosen on the same errors)",
            "correct": perf["accuracy_text"],
            "accuracy": perf["accuracy"],
        }
    ]
    if nested_perf is not None:
        rows.append(
            {
                "evaluation": f"nested {cv_label} (threshold chosen inside each fold)",
                "correct": nested_perf["accuracy_text"],
                "accuracy": nested_perf["accuracy"],
            }
        )
    k = int(round(perf["majority_baseline"] * perf["n"]))
    rows.append(
        {
            "evaluation": f"majority class (everyone {perf['majority_class']})",
            "correct": f"{k}/{perf['n']}",
            "accuracy": perf["majority_baseline"],
        }
    )
    return pd.DataFrame(rows)


def percent_view(table: pd.DataFrame, column: str = "accuracy") -> pd.DataFrame:
    """``table`` with a proportion column shown as a percentage text (for display)."""
    return table.assign(**{column: (100 * table[column]).round(1).astype(str) + "%"})


def fig4_markdown(genes, perf: dict, cr: str = "CR", nr: str = "NR") -> str:
    """The paper's Fig. 4 box (gene list, performance, equation) for this run, as Markdown."""

    def part(m):
        return f"{m.capitalize()}: {100 * perf[m]:.1f}% ({perf[f'{m}_text']})"

    # values are text (helpers.engine.report.md_text); a label enters the math only if it is plain
    tc, tn, mc, mn = tex_label(cr), tex_label(nr), md_text(cr), md_text(nr)
    rule = (
        f"$\\delta_{{{tc}}}(x^*) < \\delta_{{{tn}}}(x^*)$"
        if tc and tn
        else f"$\\delta_k(x^*)$ is smaller for $k$ = {mc} than for $k$ = {mn}"
    )
    eq = (
        f"$\\delta_k(x^*) = \\sum_i (x_i^* - \\bar{{x}}'_{{ik}})^2 / (s_i + s_0)^2 - 2 \\log \\pi_k$ for "
        f"$k \\in$ {{{mc}, {mn}}}; a patient is called {mc} if {rule}"
    )
    return (
        "\n| | |\n|---|---|\n"
        f"| **Gene list** | Model ({len(genes)} genes): {', '.join(md_text(g) for g in genes)} |\n"
        f"| **Performance** | {' · '.join(part(m) for m in METRICS)} |\n"
        f"| **Equation** | {eq} |\n"
    )


def score_cohort(model: Model, X: pd.DataFrame, samples: pd.DataFrame, response_col: str = "response") -> pd.DataFrame:
    """:func:`helpers.analysis.model.score` of every sample, with its recorded response."""
    return score(model, X).merge(samples[[response_col]], left_on="sample", right_index=True)


def confusion(scores: pd.DataFrame, truth: str = "response", call: str = "call") -> pd.DataFrame:
    """Recorded response x call counts."""
    return pd.crosstab(scores[truth], scores[call]).rename_axis(index="recorded", columns="called")


def score_match(
    match, X: pd.DataFrame, samples: pd.DataFrame, source="expression", response_col: str = "response"
) -> pd.DataFrame:
    """:func:`helpers.analysis.signature.score_cohort` of a mapped model (complete or partial),
    with every sample's recorded response."""
    from helpers.analysis import signature as sig

    return sig.score_cohort(match, X, source=source).merge(samples[[response_col]], left_on="sample", right_index=True)
