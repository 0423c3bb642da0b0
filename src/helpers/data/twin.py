"""The simulated twin: a bone-marrow RNA-seq cohort with the paper's design, built so that the
paper's own procedures would print about the paper's statistics on it.

Design (Shao, Iyer et al. 2022; split inferred, see DESIGN.md): 31 samples, cohort
"GSE153670-like" 19 CR + 8 NR and cohort "PRJCA000750-like" 3 CR + 1 NR; ``n_scale`` multiplies
every class count. Every choice below is a parameter of ``config/params.yml``
(``notebooks.01_cohort.simulate``), the one place the defaults are written.

Generative model, gene g, sample j (class c = CR/NR, cohort b)::

    depth_j      ~ median * exp(N(0, sdlog))                 sequencing depth (reads)
    log2 cpm0_g  ~ mixture: frac_low N(low_mean, low_sd), else N(high_mean, high_sd)
    p_g          = 2^log2cpm0_g / sum_g 2^log2cpm0_g          baseline share of the library
    mu_gj        = depth_j * p_g * 2^(+lfc_g/2 if CR else -lfc_g/2) * 2^(shift_g if b = shifted cohort)
                   * 2^(sum_f lambda_gf z_jf)                 latent heterogeneity
    phi_g        = min(max, (asymptote + slope / mu0_g) * exp(N(0, disp_sdlog))),  mu0_g = median * p_g
    count_gj     ~ NegBin(mean mu_gj, dispersion phi_g)      (gamma-Poisson: var = mu + phi mu^2)

``lfc_g`` is the planted log2 fold change CR vs NR (NR the reference), split symmetrically so that
``base_mean`` (the expected count at the median depth midway between the classes) is the same for
up and down genes.

Planted biology:

- programs (caller-supplied gene lists; by default ``data/annotation/programs.tsv``): a fraction of
  each program's genes gets ``|lfc| ~ |N(log2fc_mean, log2fc_sd)|`` (at least ``min_abs_log2fc``)
  with the sign given by ``higher_in`` (early memory / Tscm markers, T-cell activation, chemokine,
  interleukin: CR; cell-cycle checkpoint: NR). A gene drawn by one program is not reused by a
  later one.
- background: ``n_up`` / ``n_down`` other genes up / down in CR, drawn among the free genes whose
  expected within-class SD of log2 expression is at most the ``max_sd_quantile`` quantile of the
  free genes' (1: any gene). The expected SD is that of the gamma-Poisson on the log scale plus
  the latent loadings, ``sqrt(trigamma(1/phi) + 1/mu0 + ln2^2 sum_f lambda_gf^2) / ln 2``. Why low
  variance: PAM ranks genes by ``d = t s / (s + s0)``, limma by ``t``; a DE gene of small ``s`` is
  called by limma at a ``d`` well below the signature's, so the background DEGs do not crowd the
  14 out of the classifier (the issue's "tension", chapter 01).
- the 14 signature genes (Table 1, ``data/paper/table1.tsv``, unless ``signature.genes`` names
  others): Table 1 prints *shrunken* centroids. pamr shrinks each class centroid towards the
  overall mean by the threshold ``Delta`` in units of ``m_k (s_i + s0)``,
  ``m_k = sqrt(1/n_k - 1/n)`` (n_k the paper's class sizes, 22 and 9); :func:`unshrink` inverts
  it: overall mean ``xbar_i = sum_k n_k xbar'_ik / n`` (the shrunken centroids keep it), shrunken
  deviation ``d'_ik = (xbar'_ik - xbar_i) / (m_k (s_i + s0))`` and planted class mean
  ``xbar_i + m_k (s_i + s0) (d'_ik + sign(d'_ik) Delta)``. The within-class SD is
  ``S_i = (S_i + S0) - s0`` (Table 1's column minus the fudge factor). ``s0`` is pamr's: the
  median over genes of the pooled within-class SD; ``signature.s0: null`` measures it on the
  twin itself (log-CPM with prior count 2 of the other genes kept by filterByExpr, plain library
  sizes), a number fixes it. Within a class the 14 genes share a factor: the standardized
  deviation of gene i in sample j is ``sqrt(rho) f_j + sqrt(1 - rho) e_ij`` with
  ``rho = co_variation`` (the 14 co-vary, as the genes of a leukemia subtype do). With
  ``exact_moments`` these deviations are centred within each class and scaled to a pooled SD of
  exactly 1 (divisor n - 2, pamr's), so the class means and pooled SD of the planted log2 CPM are
  exactly the unshrunken values and pamr at threshold ``Delta`` gives back Table 1 (up to count
  noise and the data's own s0). The planted log2 CPM value ``v_ij`` is turned into an expected
  count by inverting edgeR's log-CPM (prior count 2) at the sample's library size,
  ``(2^v_ij (L_j + 2 p_j) / 1e6 - p_j)_+`` with ``p_j = 2 L_j / mean(L)``, ``L_j`` the sample's
  reads on the other genes; with ``exact_moments`` the count is that value rounded (the
  deviations already are the whole within-class variation; Poisson noise on top would inflate
  it at low counts), else a Poisson draw. Signature genes carry no latent loading and no cohort
  shift. The paper's symbol
  CCDC155 (today's KASH5) is the gene's name in the twin.
- programme activity (why a classifier of the 14 errs as the paper's did, and why adding the
  background DEGs does not make it perfect): every planted DE gene follows one sample-level
  activity, ``log2 mu_gj += lfc_g (+-1/2 - kappa f_j)`` with ``kappa = activity.within_class_sd``
  (the activity's within-class SD in units of the CR-NR difference) and ``f`` one factor of
  pooled within-class SD 1 whose NR spread is ``activity.nr_sd_ratio`` times the CR spread
  (non-responders are the more heterogeneous group; the paper's errors were all NR: 22/22 CR,
  6/9 NR). The signature's shared factor is the same ``f``. A patient whose activity sits on the
  other class's side looks like that class on every DE gene at once, so the DE genes are
  redundant evidence and the LOOCV error stays near the paper's however many genes are used.
- cohort effect: every other gene of the shifted cohort gets ``shift_g ~ N(0, log2_sd)`` on the
  log2 scale.
- latent heterogeneity (what makes real bone-marrow samples differ: cell composition, blast
  burden): ``n_factors`` sample factors ``z_jf ~ N(0, 1)``, independent of response and cohort,
  each loading on a random ``fraction_genes`` of genes with ``lambda_gf ~ N(0, log2_sd)``;
  ``log2 mu_gj += sum_f lambda_gf z_jf``. They dominate the leading PCs, as in the paper's
  Fig. 1B (no clear CR/NR or cohort separation on all genes).
  With ``center_within_class`` the factor scores are centred within each response class, so that
  no factor is confounded with response by chance (which would add spurious DE genes at random).

Deterministic: one ``numpy.random.Generator`` from ``seed``, draws in a fixed order.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
from scipy.special import polygamma

from helpers.engine.errors import InputError
from helpers.engine.paths import ANNOTATION, PAPER


def _read_table1() -> dict:
    """gene -> [shrunken centroid CR, shrunken centroid NR, S1 + S0] from the paper's Table 1
    (``data/paper/table1.tsv``, the one copy of those values in the project)."""
    t = pd.read_csv(PAPER / "table1.tsv", sep="\t")
    return {str(r.gene): [float(r.centroid_CR), float(r.centroid_NR), float(r.sd)] for r in t.itertuples()}


SIGNATURE_TABLE1 = _read_table1()


def _config_defaults() -> tuple[dict, dict]:
    """The twin's defaults and the test profile's overrides, read from ``config/params.yml``
    (``notebooks.01_cohort.simulate``): the one place they are written down."""
    import yaml

    from helpers.engine.paths import CONFIG

    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    base = copy.deepcopy(cfg["notebooks"]["01_cohort"]["simulate"])
    base["labels"] = ["CR", "NR"]  # [responder, reference]; lfc = first - second (set from cr_label/nr_label)
    test = ((cfg.get("profiles") or {}).get("test") or {}).get("notebooks", {}).get("01_cohort", {}).get("simulate", {})
    return base, test


DEFAULT_PARAMS, _TEST_OVERRIDES = _config_defaults()
TEST_PARAMS = copy.deepcopy(DEFAULT_PARAMS)
for _k, _v in _TEST_OVERRIDES.items():
    if isinstance(_v, dict) and isinstance(TEST_PARAMS.get(_k), dict):
        TEST_PARAMS[_k].update(copy.deepcopy(_v))
    else:
        TEST_PARAMS[_k] = copy.deepcopy(_v)

PRESETS = {"default": DEFAULT_PARAMS, "test": TEST_PARAMS}


def preset(name: str = "default", **overrides) -> dict:
    """A deep copy of a parameter preset ('default' or 'test'), with top-level keys overridden."""
    if name not in PRESETS:
        raise InputError(
            f"unknown simulation preset {name!r}; choose one of {sorted(PRESETS)}", path="params", where="simulate"
        )
    p = copy.deepcopy(PRESETS[name])
    p.update(copy.deepcopy(overrides))
    return check_params(p)


def merge_params(base: dict, overrides: dict, where: str = "simulate") -> dict:
    """Deep-merge ``overrides`` into a copy of ``base``; unknown keys are errors (except new
    program / signature gene names)."""
    out = copy.deepcopy(base)
    for k, v in (overrides or {}).items():
        if k not in out and where.split(".")[-1] not in ("programs", "genes"):
            raise InputError(f"unknown parameter {k!r}", path="params", where=where)
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_params(out[k], v, where=f"{where}.{k}")
        else:
            out[k] = copy.deepcopy(v)
    return out


def check_params(params: dict) -> dict:
    """Validate a parameter dict (keys and basic ranges); returns it unchanged."""
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise InputError(f"unknown parameter(s) {sorted(unknown)}", path="params", where="simulate")
    missing = set(DEFAULT_PARAMS) - set(params)
    if missing:
        raise InputError(f"missing parameter(s) {sorted(missing)}", path="params", where="simulate")
    if not float(params["n_scale"]) > 0:
        raise InputError("n_scale must be a positive number", path="params", where="simulate.n_scale")
    if len(params["labels"]) != 2:
        raise InputError(
            "labels must be two class labels [responder, reference]", path="params", where="simulate.labels"
        )
    for name, prog in params["programs"].items():
        if prog["higher_in"] not in ("CR", "NR"):
            raise InputError("higher_in must be CR or NR", path="params", where=f"simulate.programs.{name}")
        if not 0 <= prog["fraction"] <= 1:
            raise InputError("fraction must be in [0, 1]", path="params", where=f"simulate.programs.{name}")
    sg = params["signature"]
    if not (isinstance(sg["delta"], (int, float)) and sg["delta"] >= 0):
        raise InputError(
            f"delta must be a number >= 0, got {sg['delta']!r}", path="params", where="simulate.signature.delta"
        )
    if sg["s0"] is not None and not (isinstance(sg["s0"], (int, float)) and sg["s0"] > 0):
        raise InputError(
            f"s0 must be null (measured) or a number > 0, got {sg['s0']!r}",
            path="params",
            where="simulate.signature.s0",
        )
    if not (isinstance(sg["co_variation"], (int, float)) and 0 <= sg["co_variation"] < 1):
        raise InputError(
            f"co_variation must be in [0, 1), got {sg['co_variation']!r}",
            path="params",
            where="simulate.signature.co_variation",
        )
    act = params["activity"]
    if not (isinstance(act["within_class_sd"], (int, float)) and act["within_class_sd"] >= 0):
        raise InputError(
            f"within_class_sd must be a number >= 0, got {act['within_class_sd']!r}",
            path="params",
            where="simulate.activity.within_class_sd",
        )
    if not (isinstance(act["nr_sd_ratio"], (int, float)) and act["nr_sd_ratio"] > 0):
        raise InputError(
            f"nr_sd_ratio must be a number > 0, got {act['nr_sd_ratio']!r}",
            path="params",
            where="simulate.activity.nr_sd_ratio",
        )
    q = params["background"]["max_sd_quantile"]
    if not (isinstance(q, (int, float)) and 0 < q <= 1):
        raise InputError(
            f"max_sd_quantile must be in (0, 1], got {q!r}", path="params", where="simulate.background.max_sd_quantile"
        )
    return params


def class_size(n: int, n_scale: float) -> int:
    """A cohort's class size times ``n_scale``, rounded half up; a non-empty class keeps at least
    one sample (so ``n_scale`` 0.5 halves the design to 12 CR + 5 NR)."""
    if int(n) == 0:
        return 0
    return max(1, int(math.floor(int(n) * float(n_scale) + 0.5)))


def load_programs(path=None) -> dict[str, list[str]]:
    """Program -> sorted gene symbols from ``data/annotation/programs.tsv`` (or ``path``)."""
    path = path or ANNOTATION / "programs.tsv"
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError("program table not found; run scripts/build_annotation.py", path=path) from None
    return {p: sorted(set(g["symbol"])) for p, g in df.groupby("program", sort=True)}


def default_universe(annotation: pd.DataFrame | None = None, signature_genes=tuple(SIGNATURE_TABLE1)) -> list[str]:
    """Protein-coding symbols from the shipped annotation; a signature gene whose paper symbol is
    now an alias (CCDC155 -> KASH5) replaces its current symbol so the twin uses the paper's names."""
    from helpers.data.annotation import current_symbols, load_annotation, protein_coding_symbols

    ann = load_annotation() if annotation is None else annotation
    pc = set(protein_coding_symbols(ann))
    cur = current_symbols(list(signature_genes), annotation=ann)
    for paper_sym, now in cur.items():
        if paper_sym not in pc:
            pc.discard(now)
            pc.add(paper_sym)
    return sorted(pc)


def _abs_effects(rng, n, mean, sd, min_abs):
    return np.maximum(np.abs(rng.normal(mean, sd, size=n)), min_abs)


def paper_class_sizes(params: dict) -> tuple[int, int]:
    """(n_CR, n_NR) of the design at ``n_scale`` 1: the class sizes of the paper's pamr fit,
    which set the ``m_k`` that Table 1 was shrunk with."""
    return (sum(int(c["n_CR"]) for c in params["cohorts"]), sum(int(c["n_NR"]) for c in params["cohorts"]))


def unshrink(table: dict | pd.DataFrame, delta: float, s0: float, n_cr: int, n_nr: int) -> pd.DataFrame:
    """Invert pamr's soft threshold for a table of shrunken centroids (Table 1).

    ``table``: gene -> [shrunken centroid CR, shrunken centroid NR, S_i + S0] (a dict as
    :data:`SIGNATURE_TABLE1`, or a DataFrame with columns centroid_CR, centroid_NR, sd).
    Returns per gene: ``overall`` (the overall mean, which shrinking keeps), ``d_shrunk`` (the
    shrunken standardized deviation of CR, ``d'_CR``; NR's is ``-d'_CR`` for two classes),
    ``d`` (unshrunken, ``d'_CR + sign(d'_CR) delta``), ``mean_CR`` and ``mean_NR`` (the class
    means before shrinking) and ``sd_within`` (``S_i = (S_i + S0) - s0``). A gene whose Table 1
    SD is not above ``s0`` raises InputError (its own SD would be negative).
    """
    if isinstance(table, pd.DataFrame):
        t = table[["centroid_CR", "centroid_NR", "sd"]].astype(float)
    else:
        t = pd.DataFrame.from_dict(table, orient="index", columns=["centroid_CR", "centroid_NR", "sd"]).astype(float)
    if delta < 0 or not np.isfinite(delta):
        raise InputError(
            f"delta must be a finite number >= 0, got {delta}", path="params", where="simulate.signature.delta"
        )
    if n_cr < 1 or n_nr < 1:
        raise InputError(f"need both classes, got n_CR={n_cr}, n_NR={n_nr}", path="params", where="simulate.cohorts")
    bad = t.index[~(t["sd"] > s0)].tolist()
    if bad:
        raise InputError(
            f"Table 1 SD (S_i + S0) of {bad[0]} is not above s0 = {s0:.3g}",
            path="params",
            where="simulate.signature.s0",
        )
    n = n_cr + n_nr
    m_cr, m_nr = math.sqrt(1 / n_cr - 1 / n), math.sqrt(1 / n_nr - 1 / n)
    overall = (n_cr * t["centroid_CR"] + n_nr * t["centroid_NR"]) / n
    d_cr = (t["centroid_CR"] - overall) / (m_cr * t["sd"])
    d_nr = (t["centroid_NR"] - overall) / (m_nr * t["sd"])
    out = pd.DataFrame(
        {
            "overall": overall,
            "d_shrunk": d_cr,
            "d": d_cr + np.sign(d_cr) * delta,
            "mean_CR": overall + m_cr * t["sd"] * (d_cr + np.sign(d_cr) * delta),
            "mean_NR": overall + m_nr * t["sd"] * (d_nr + np.sign(d_nr) * delta),
            "sd_within": t["sd"] - s0,
        }
    )
    out.index.name = "gene"
    return out


def pooled_sd(x: np.ndarray, is_first: np.ndarray) -> np.ndarray:
    """Per row of ``x`` (genes x samples), the pooled within-class SD of two classes (divisor n - 2,
    pamr's ``s_i``)."""
    x = np.asarray(x, dtype=float)
    ss = np.zeros(x.shape[0])
    for grp in (is_first, ~is_first):
        part = x[:, grp]
        ss += ((part - part.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    return np.sqrt(ss / (x.shape[1] - 2))


def measured_s0(counts: np.ndarray, is_cr: np.ndarray, percentile: float = 50.0) -> float:
    """pamr's s0 on a count matrix: the ``percentile`` of the pooled within-class SDs of log-CPM
    (prior count 2, column sums as library sizes) over the genes ``filterByExpr`` keeps."""
    from helpers.methods.edger import cpm, filter_by_expr

    y = np.asarray(counts, dtype=float)
    keep = filter_by_expr(y, group=np.where(is_cr, "a", "b"))
    lc = cpm(y[keep], lib_size=y.sum(axis=0), log=True, prior_count=2)
    return float(np.percentile(pooled_sd(lc, is_cr), percentile))


def expected_log2_sd(phi: np.ndarray, mu0: np.ndarray, loadings: np.ndarray) -> np.ndarray:
    """Expected within-class SD of a gene's log2 expression: gamma-Poisson on the log scale
    (``trigamma(1/phi) + 1/mu0``) plus the latent loadings (``ln2^2 sum_f lambda^2``), in log2 units."""
    var_ln = polygamma(1, 1.0 / np.asarray(phi, float)) + 1.0 / np.maximum(np.asarray(mu0, float), 1e-12)
    var_ln = var_ln + math.log(2) ** 2 * (np.asarray(loadings, float) ** 2).sum(axis=1)
    return np.sqrt(var_ln) / math.log(2)


def activity_factor(rng, is_cr: np.ndarray, nr_sd_ratio: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The programme activity's within-class variation: one sample factor ``f_j``, drawn N(0, 1),
    centred and scaled within each class to SD 1, the reference (NR) class then stretched by
    ``nr_sd_ratio``, and all rescaled to a pooled within-class SD of exactly 1 (divisor n - 2).
    Returns (f, the per-sample class SD of f: a for CR, ``nr_sd_ratio`` * a for NR)."""
    n = len(is_cr)
    f = rng.normal(size=n)
    scale = np.where(is_cr, 1.0, float(nr_sd_ratio))
    for grp in (is_cr, ~is_cr):
        f[grp] -= f[grp].mean()
        sd = math.sqrt(float((f[grp] ** 2).sum()) / max(int(grp.sum()) - 1, 1))
        if sd > 0:
            f[grp] /= sd
    f *= scale
    pooled = math.sqrt(float((f**2).sum()) / (n - 2))
    return f / pooled, scale / pooled


def signature_deviations(
    rng,
    signs: np.ndarray,
    is_cr: np.ndarray,
    co_variation: float,
    exact: bool,
    factor: np.ndarray,
    class_sd: np.ndarray,
) -> np.ndarray:
    """Standardized within-class deviations of the signature genes (genes x samples):
    ``sqrt(rho) sign_i f_j + sqrt(1 - rho) c_j e_ij`` with the shared activity ``factor`` f
    (sign_i = +1 for a gene higher in NR, so a high f is NR-like on every gene) and ``c_j`` its
    class SD (so both parts spread the classes alike). With ``exact`` each gene's deviations are
    centred within each class and scaled to a pooled within-class SD of exactly 1 (divisor n - 2)."""
    rho = float(co_variation)
    signs = np.asarray(signs, dtype=float)
    n = len(is_cr)
    e = rng.normal(size=(len(signs), n)) * np.asarray(class_sd, float)[None, :]
    z = math.sqrt(rho) * signs[:, None] * np.asarray(factor, float)[None, :] + math.sqrt(1.0 - rho) * e
    if exact:
        ss = np.zeros(len(signs))
        for m in (is_cr, ~is_cr):
            z[:, m] -= z[:, m].mean(axis=1, keepdims=True)
            ss += (z[:, m] ** 2).sum(axis=1)
        z /= np.sqrt(ss / (n - 2))[:, None]
    return z


def expected_counts_for_log_cpm(v: np.ndarray, lib: np.ndarray, prior_count: float = 2.0) -> np.ndarray:
    """Counts whose edgeR log-CPM (``log2((y + p_j) / (L_j + 2 p_j) 1e6)``, ``p_j = prior L_j /
    mean L``) is ``v`` (genes x samples) at library sizes ``lib``; values below the floor give 0."""
    lib = np.asarray(lib, dtype=float)
    prior = prior_count * lib / lib.mean()
    y = np.exp2(v) * (lib + 2 * prior)[None, :] * 1e-6 - prior[None, :]
    return np.maximum(y, 0.0)


def simulate_cohort(
    params: dict | None = None,
    gene_universe: list[str] | None = None,
    programs: dict[str, list[str]] | None = None,
    seed: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Simulate the twin cohort.

    Parameters
    ----------
    params : parameter dict shaped like :data:`DEFAULT_PARAMS` (None: the defaults).
    gene_universe : symbols to draw ``n_genes`` from (None: :func:`default_universe`). Signature
        genes and (if ``include_program_genes``) program genes are always included.
    programs : program name -> gene symbols (None: :func:`load_programs`). Every program named in
        ``params['programs']`` must be present; genes outside the universe are ignored.
    seed : seed of the one random generator.

    Returns
    -------
    counts : genes x samples int64 DataFrame (index 'gene', genes sorted).
    samples : sample sheet (sample_id, cohort, response, age, sex, library_size), indexed by sample_id.
    truth : per gene: log2fc_cr_vs_nr, program ('' if none), base_mean, dispersion (0 for the
        Poisson signature genes), cohort_shift_log2. ``truth.attrs`` holds ``s0`` (the value the
        signature was unshrunk with) and ``signature`` (the :func:`unshrink` table as records).
    """
    p = check_params(copy.deepcopy(DEFAULT_PARAMS if params is None else params))
    rng = np.random.default_rng(seed)
    lab_cr, lab_nr = p["labels"]
    if gene_universe is None:
        gene_universe = default_universe()
    if programs is None:
        programs = load_programs()
    missing = [k for k in p["programs"] if k not in programs]
    if missing:
        raise InputError(f"no gene list given for program(s) {missing}", path="params", where="simulate.programs")

    # --- gene universe -------------------------------------------------------------------
    universe = sorted(set(map(str, gene_universe)))
    uset = set(universe)
    sig = {g: v for g, v in (p["signature"]["genes"] or SIGNATURE_TABLE1).items()}  # empty: Table 1
    sig_missing = [g for g in sig if g not in uset]
    if sig_missing:
        raise InputError(
            f"signature genes not in the gene universe: {sig_missing}", path="params", where="simulate.signature"
        )
    forced = set(sig)
    if p["include_program_genes"]:
        for name in p["programs"]:
            forced |= set(programs[name]) & uset
    n_genes = int(p["n_genes"])
    if n_genes < len(forced):
        raise InputError(
            f"n_genes={n_genes} is smaller than the {len(forced)} signature/program genes",
            path="params",
            where="simulate.n_genes",
        )
    rest = np.array(sorted(uset - forced), dtype=object)
    n_rest = min(n_genes - len(forced), len(rest))
    chosen = rest[rng.permutation(len(rest))[:n_rest]]
    genes = np.array(sorted(forced | set(chosen)), dtype=object)
    G = len(genes)
    gidx = {g: i for i, g in enumerate(genes)}
    sig_rows = np.array([gidx[g] for g in sig], dtype=int)
    is_sig = np.zeros(G, dtype=bool)
    is_sig[sig_rows] = True

    # --- samples ---------------------------------------------------------------------------
    scale = float(p["n_scale"])
    rows = []
    for coh in p["cohorts"]:
        for lab, key in ((lab_cr, "n_CR"), (lab_nr, "n_NR")):
            rows += [(coh["name"], lab, bool(coh.get("clinical", False)))] * class_size(coh[key], scale)
    N = len(rows)
    width = max(2, len(str(N)))
    sample_ids = [f"S{i + 1:0{width}d}" for i in range(N)]
    cohort = np.array([r[0] for r in rows], dtype=object)
    response = np.array([r[1] for r in rows], dtype=object)
    is_cr = response == lab_cr

    lib = p["library_size"]
    depth = lib["median"] * np.exp(rng.normal(0.0, lib["sdlog"], size=N))

    # --- baseline expression and dispersion ------------------------------------------------
    b = p["baseline"]
    low = rng.random(G) < b["frac_low"]
    log2cpm = np.where(
        low,
        rng.normal(b["low_log2cpm_mean"], b["low_log2cpm_sd"], G),
        rng.normal(b["high_log2cpm_mean"], b["high_log2cpm_sd"], G),
    )
    share = np.exp2(log2cpm)
    share /= share.sum()
    d = p["dispersion"]
    mu0 = lib["median"] * share
    phi = (d["asymptote"] + d["slope"] / mu0) * np.exp(rng.normal(0.0, d["sdlog"], G))
    phi = np.minimum(phi, d["max"])

    # --- latent sample heterogeneity (cell composition, blast burden...), independent of response
    lt = p["latent"]
    n_f = int(lt["n_factors"])
    load = rng.normal(0.0, lt["log2_sd"], size=(G, n_f)) * (rng.random((G, n_f)) < lt["fraction_genes"])
    load[sig_rows, :] = 0.0  # the signature's within-class spread is planted below
    z = rng.normal(0.0, 1.0, size=(N, n_f))
    if lt["center_within_class"]:  # no factor confounded with response by chance
        for grp in (is_cr, ~is_cr):
            z[grp] -= z[grp].mean(axis=0)

    # --- planted effects ---------------------------------------------------------------------
    lfc = np.zeros(G)
    program = np.array([""] * G, dtype=object)
    min_abs = p["min_abs_log2fc"]
    for name, spec in p["programs"].items():
        members = sorted((set(programs[name]) & set(gidx)) - set(sig))
        free = [g for g in members if program[gidx[g]] == ""]
        k = int(round(spec["fraction"] * len(members)))
        k = min(k, len(free))
        pick = [free[i] for i in sorted(rng.permutation(len(free))[:k])]
        sign = 1.0 if spec["higher_in"] == "CR" else -1.0
        eff = sign * _abs_effects(rng, k, spec["log2fc_mean"], spec["log2fc_sd"], min_abs)
        for g, e in zip(pick, eff):
            lfc[gidx[g]] = e
            program[gidx[g]] = name
    prog_genes = set()
    for name in p["programs"]:
        prog_genes |= set(programs[name])
    bg = p["background"]
    pool = np.array(
        [gidx[g] for g in genes if program[gidx[g]] == "" and g not in sig and g not in prog_genes], dtype=int
    )
    q = float(bg["max_sd_quantile"])
    if q < 1:
        esd = expected_log2_sd(phi[pool], mu0[pool], load[pool])
        pool = pool[esd <= np.quantile(esd, q)]
    n_up, n_down = int(bg["n_up"]), int(bg["n_down"])
    if n_up + n_down > len(pool):
        raise InputError(
            f"background n_up + n_down = {n_up + n_down} exceeds the {len(pool)} free genes (max_sd_quantile {q:g})",
            path="params",
            where="simulate.background",
        )
    order = rng.permutation(len(pool))
    eff = _abs_effects(rng, n_up + n_down, bg["log2fc_mean"], bg["log2fc_sd"], min_abs)
    for j, i in enumerate(order[: n_up + n_down]):
        gi = pool[i]
        up = j < n_up
        lfc[gi] = eff[j] if up else -eff[j]
        program[gi] = "background_up" if up else "background_down"

    # programme activity: one within-class factor shared by every planted DE gene and the signature
    act = p["activity"]
    f_act, f_sd = activity_factor(rng, is_cr, float(act["nr_sd_ratio"]))
    coupling = float(act["within_class_sd"])

    # cohort effect
    ce = p["cohort_effect"]
    shift = rng.normal(0.0, ce["log2_sd"], G)
    shift[sig_rows] = 0.0
    shifted = cohort == ce["cohort"]

    # --- counts of every gene but the signature ---------------------------------------------
    half = np.where(is_cr, 0.5, -0.5)
    log2mu = (
        np.log2(share)[:, None]
        + np.log2(depth)[None, :]
        + lfc[:, None] * half[None, :]
        + shift[:, None] * shifted[None, :]
        + load @ z.T
        - coupling * lfc[:, None] * f_act[None, :]
    )
    mu = np.exp2(log2mu)
    mu[sig_rows] = 1.0  # placeholder, replaced below
    shape = 1.0 / phi
    lam = rng.gamma(shape[:, None], (mu * phi[:, None]))
    counts = rng.poisson(lam).astype(np.int64)

    # --- the signature: Table 1 unshrunk (see the module docstring) --------------------------
    sp = p["signature"]
    other = counts[~is_sig]
    lib_other = other.sum(axis=0).astype(float)
    s0 = sp["s0"]
    s0 = measured_s0(other, is_cr) if s0 is None else float(s0)
    n_cr_paper, n_nr_paper = paper_class_sizes(p)
    un = unshrink(sig, float(sp["delta"]), s0, n_cr_paper, n_nr_paper)
    signs = np.sign(un["mean_NR"] - un["mean_CR"]).to_numpy()
    dev = signature_deviations(rng, signs, is_cr, float(sp["co_variation"]), bool(sp["exact_moments"]), f_act, f_sd)
    means = np.where(is_cr[None, :], un["mean_CR"].to_numpy()[:, None], un["mean_NR"].to_numpy()[:, None])
    v = means + un["sd_within"].to_numpy()[:, None] * dev
    expected = expected_counts_for_log_cpm(v, lib_other)
    if sp["exact_moments"]:  # the deviations already hold all within-class variation: no Poisson on top
        counts[sig_rows] = np.floor(expected + 0.5).astype(np.int64)
    else:
        counts[sig_rows] = rng.poisson(expected).astype(np.int64)
    lfc[sig_rows] = (un["mean_CR"] - un["mean_NR"]).to_numpy()
    program[sig_rows] = "signature"
    phi[sig_rows] = 0.0
    mid = (un["mean_CR"].to_numpy() + un["mean_NR"].to_numpy()) / 2
    mu0[sig_rows] = lib["median"] * np.exp2(mid) * 1e-6

    counts_df = pd.DataFrame(counts, index=pd.Index(list(genes), name="gene"), columns=sample_ids)

    # --- clinical columns ----------------------------------------------------------------------
    cl = p["clinical"]
    age_draw = np.clip(np.round(rng.normal(cl["age_mean"], cl["age_sd"], N)), cl["age_min"], cl["age_max"])
    sex_draw = np.where(rng.random(N) < cl["p_female"], "F", "M")
    has_clin = np.array([r[2] for r in rows])
    samples = pd.DataFrame(
        {
            "sample_id": sample_ids,
            "cohort": cohort.astype(str),
            "response": response.astype(str),
            "age": pd.array([int(a) if h else pd.NA for a, h in zip(age_draw, has_clin)], dtype="Int64"),
            "sex": pd.array([s if h else pd.NA for s, h in zip(sex_draw, has_clin)], dtype="string"),
            "library_size": counts.sum(axis=0).astype(np.int64),
        }
    ).set_index("sample_id", drop=False)
    samples.index.name = None

    truth = pd.DataFrame(
        {
            "gene": list(genes),
            "log2fc_cr_vs_nr": lfc,
            "program": program.astype(str),
            "base_mean": mu0,
            "dispersion": phi,
            "cohort_shift_log2": shift,
        }
    )
    truth.attrs["s0"] = s0
    truth.attrs["signature"] = un.reset_index().to_dict(orient="records")
    return counts_df, samples, truth


def signature_plan(params: dict, s0: float) -> pd.DataFrame:
    """Table 1 beside what the twin plants for it: per gene the printed shrunken centroids and
    S_i + S0, the class means before shrinking, the within-class SD S_i and pamr's |d| (the
    :func:`unshrink` of the signature with the design's ``delta`` and the paper's class sizes)."""
    sig = params["signature"]["genes"] or SIGNATURE_TABLE1
    n_cr, n_nr = paper_class_sizes(params)
    un = unshrink(sig, float(params["signature"]["delta"]), float(s0), n_cr, n_nr)
    t = pd.DataFrame.from_dict(sig, orient="index", columns=["centroid_CR", "centroid_NR", "sd"])
    out = pd.DataFrame(
        {
            "gene": list(t.index),
            "table1_CR": t["centroid_CR"].to_numpy(),
            "table1_NR": t["centroid_NR"].to_numpy(),
            "table1_sd": t["sd"].to_numpy(),
            "planted_CR": un["mean_CR"].to_numpy(),
            "planted_NR": un["mean_NR"].to_numpy(),
            "sd_within": un["sd_within"].to_numpy(),
            "abs_d": np.abs(un["d"].to_numpy()),
        }
    )
    return out
