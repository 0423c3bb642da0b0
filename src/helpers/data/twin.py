"""The simulated twin: a bone-marrow RNA-seq cohort with the paper's design and planted biology.

Design (Shao, Iyer et al. 2022; split inferred, see DESIGN.md): 31 samples, cohort
"GSE153670-like" 19 CR + 8 NR and cohort "PRJCA000750-like" 3 CR + 1 NR; ``n_scale`` multiplies
every class count. Everything below is a parameter in :data:`DEFAULT_PARAMS`.

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
- background: ``n_up`` / ``n_down`` random other genes up / down in CR. With the defaults about
  50 genes are planted up and 540 down in CR (programs + background + signature), about the paper's
  1:5 ratio (57 up, 302 down called); not every planted gene is detectable at n = 31.
- the 14 signature genes: class means set so that the expected log2 CPM of each class equals
  Table 1's shrunken centroid (CR, NR), and the within-class SD of log2 CPM equals ``sd_scale`` x
  Table 1's S1+S0. Exact for the gamma part of the gamma-Poisson (Poisson noise is negligible at
  these depths): for X ~ Gamma(k, mean mu), Var[ln X] = trigamma(k) and
  E[ln X] = ln mu - (ln k - digamma(k)). So k solves trigamma(k) = (sd ln 2)^2, phi = 1/k, and the
  class's expected CPM is ``2^(centroid + (ln k - digamma(k)) / ln 2)``. ``sd_scale`` = 1 would
  reproduce the published spread (S1+S0 also holds PAM's s0, so it overstates the gene's own SD);
  the default 0.4 gives SDs of 0.9-1.5 log2 units. Shrunken centroids understate the true class
  difference, so planting them as means makes the twin's signature conservative.
  The paper's symbol CCDC155 (today's KASH5) is used as the gene's name in the twin.
- cohort effect: every gene of the shifted cohort gets ``shift_g ~ N(0, log2_sd)`` on the log2 scale.
- latent heterogeneity (what makes real bone-marrow samples differ: cell composition, blast
  burden): ``n_factors`` sample factors ``z_jf ~ N(0, 1)``, independent of response and cohort,
  each loading on a random ``fraction_genes`` of genes with ``lambda_gf ~ N(0, log2_sd)``;
  ``log2 mu_gj += sum_f lambda_gf z_jf``. They dominate the leading PCs, as in the paper's
  Fig. 1B (no clear CR/NR or cohort separation on all genes). Signature genes are not loaded.
  With ``center_within_class`` the factor scores are centred within each response class, so that
  no factor is confounded with response by chance (which would add spurious DE genes at random).

Deterministic: one ``numpy.random.Generator`` from ``seed``, draws in a fixed order.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import digamma, polygamma

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
        raise InputError(f"unknown simulation preset {name!r}; choose one of {sorted(PRESETS)}",
                         path="params", where="simulate")
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
    if int(params["n_scale"]) < 1:
        raise InputError("n_scale must be a positive integer", path="params", where="simulate.n_scale")
    if len(params["labels"]) != 2:
        raise InputError("labels must be two class labels [responder, reference]", path="params",
                         where="simulate.labels")
    for name, prog in params["programs"].items():
        if prog["higher_in"] not in ("CR", "NR"):
            raise InputError("higher_in must be CR or NR", path="params", where=f"simulate.programs.{name}")
        if not 0 <= prog["fraction"] <= 1:
            raise InputError("fraction must be in [0, 1]", path="params", where=f"simulate.programs.{name}")
    return params


def load_programs(path=None) -> dict[str, list[str]]:
    """Program -> sorted gene symbols from ``data/annotation/programs.tsv`` (or ``path``)."""
    path = path or ANNOTATION / "programs.tsv"
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError("program table not found; run scripts/build_annotation.py", path=path) from None
    return {p: sorted(set(g["symbol"])) for p, g in df.groupby("program", sort=True)}


def default_universe(annotation: pd.DataFrame | None = None,
                     signature_genes=tuple(SIGNATURE_TABLE1)) -> list[str]:
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


def gamma_shape_for_log_sd(sd_ln: float) -> float:
    """Shape k of a gamma variable whose natural log has standard deviation ``sd_ln``
    (solves trigamma(k) = sd_ln^2)."""
    target = float(sd_ln) ** 2
    if target <= 0:
        raise InputError("signature SD must be positive", path="params", where="simulate.signature")
    return float(brentq(lambda k: polygamma(1, k) - target, 1e-6, 1e9, xtol=1e-12, rtol=1e-12))


def _abs_effects(rng, n, mean, sd, min_abs):
    return np.maximum(np.abs(rng.normal(mean, sd, size=n)), min_abs)


def simulate_cohort(params: dict | None = None, gene_universe: list[str] | None = None,
                    programs: dict[str, list[str]] | None = None, seed: int = 1
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
    truth : per gene: log2fc_cr_vs_nr, program ('' if none), base_mean, dispersion, cohort_shift_log2.
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
        raise InputError(f"no gene list given for program(s) {missing}", path="params",
                         where="simulate.programs")

    # --- gene universe -------------------------------------------------------------------
    universe = sorted(set(map(str, gene_universe)))
    uset = set(universe)
    sig = {g: v for g, v in (p["signature"]["genes"] or SIGNATURE_TABLE1).items()}  # empty: Table 1
    sig_missing = [g for g in sig if g not in uset]
    if sig_missing:
        raise InputError(f"signature genes not in the gene universe: {sig_missing}", path="params",
                         where="simulate.signature")
    forced = set(sig)
    if p["include_program_genes"]:
        for name in p["programs"]:
            forced |= set(programs[name]) & uset
    n_genes = int(p["n_genes"])
    if n_genes < len(forced):
        raise InputError(f"n_genes={n_genes} is smaller than the {len(forced)} signature/program genes",
                         path="params", where="simulate.n_genes")
    rest = np.array(sorted(uset - forced), dtype=object)
    n_rest = min(n_genes - len(forced), len(rest))
    chosen = rest[rng.permutation(len(rest))[:n_rest]]
    genes = np.array(sorted(forced | set(chosen)), dtype=object)
    G = len(genes)
    gidx = {g: i for i, g in enumerate(genes)}

    # --- samples ---------------------------------------------------------------------------
    scale = int(p["n_scale"])
    rows = []
    for coh in p["cohorts"]:
        for lab, key in ((lab_cr, "n_CR"), (lab_nr, "n_NR")):
            rows += [(coh["name"], lab, bool(coh.get("clinical", False)))] * (int(coh[key]) * scale)
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
    log2cpm = np.where(low, rng.normal(b["low_log2cpm_mean"], b["low_log2cpm_sd"], G),
                       rng.normal(b["high_log2cpm_mean"], b["high_log2cpm_sd"], G))
    share = np.exp2(log2cpm)
    share /= share.sum()
    d = p["dispersion"]
    mu0 = lib["median"] * share
    phi = (d["asymptote"] + d["slope"] / mu0) * np.exp(rng.normal(0.0, d["sdlog"], G))
    phi = np.minimum(phi, d["max"])

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
    pool = [g for g in genes if program[gidx[g]] == "" and g not in sig and g not in prog_genes]
    n_up, n_down = int(bg["n_up"]), int(bg["n_down"])
    if n_up + n_down > len(pool):
        raise InputError(f"background n_up + n_down = {n_up + n_down} exceeds the {len(pool)} free genes",
                         path="params", where="simulate.background")
    order = rng.permutation(len(pool))
    eff = _abs_effects(rng, n_up + n_down, bg["log2fc_mean"], bg["log2fc_sd"], min_abs)
    for j, i in enumerate(order[: n_up + n_down]):
        gi = gidx[pool[i]]
        up = j < n_up
        lfc[gi] = eff[j] if up else -eff[j]
        program[gi] = "background_up" if up else "background_down"

    # signature genes: class-specific expected CPM from Table 1 centroids (see module docstring)
    sd_scale = p["signature"]["sd_scale"]
    for g, (c_cr, c_nr, s) in sig.items():
        gi = gidx[g]
        k = gamma_shape_for_log_sd(sd_scale * s * math.log(2))
        phi_g = 1.0 / k
        corr = (math.log(k) - float(digamma(k))) / math.log(2)
        cpm_cr, cpm_nr = 2.0 ** (c_cr + corr), 2.0 ** (c_nr + corr)
        share[gi] = math.sqrt(cpm_cr * cpm_nr) / 1e6
        lfc[gi] = c_cr - c_nr
        phi[gi] = phi_g
        program[gi] = "signature"
    mu0 = lib["median"] * share

    # cohort effect
    ce = p["cohort_effect"]
    shift = rng.normal(0.0, ce["log2_sd"], G)
    shifted = cohort == ce["cohort"]

    # latent sample heterogeneity (cell composition, blast burden...), independent of response
    lt = p["latent"]
    n_f = int(lt["n_factors"])
    load = rng.normal(0.0, lt["log2_sd"], size=(G, n_f)) * (rng.random((G, n_f)) < lt["fraction_genes"])
    load[[gidx[g] for g in sig], :] = 0.0  # signature genes keep Table 1's within-class SD
    z = rng.normal(0.0, 1.0, size=(N, n_f))
    if lt["center_within_class"]:  # no factor confounded with response by chance
        for grp in (is_cr, ~is_cr):
            z[grp] -= z[grp].mean(axis=0)

    # --- counts ------------------------------------------------------------------------------
    half = np.where(is_cr, 0.5, -0.5)
    log2mu = (np.log2(share)[:, None] + np.log2(depth)[None, :] + lfc[:, None] * half[None, :]
              + shift[:, None] * shifted[None, :] + load @ z.T)
    mu = np.exp2(log2mu)
    shape = 1.0 / phi
    lam = rng.gamma(shape[:, None], (mu * phi[:, None]))
    counts = rng.poisson(lam).astype(np.int64)

    counts_df = pd.DataFrame(counts, index=pd.Index(list(genes), name="gene"), columns=sample_ids)

    # --- clinical columns ----------------------------------------------------------------------
    cl = p["clinical"]
    age_draw = np.clip(np.round(rng.normal(cl["age_mean"], cl["age_sd"], N)), cl["age_min"], cl["age_max"])
    sex_draw = np.where(rng.random(N) < cl["p_female"], "F", "M")
    has_clin = np.array([r[2] for r in rows])
    samples = pd.DataFrame({
        "sample_id": sample_ids,
        "cohort": cohort.astype(str),
        "response": response.astype(str),
        "age": pd.array([int(a) if h else pd.NA for a, h in zip(age_draw, has_clin)], dtype="Int64"),
        "sex": pd.array([s if h else pd.NA for s, h in zip(sex_draw, has_clin)], dtype="string"),
        "library_size": counts.sum(axis=0).astype(np.int64),
    }).set_index("sample_id", drop=False)
    samples.index.name = None

    truth = pd.DataFrame({
        "gene": list(genes),
        "log2fc_cr_vs_nr": lfc,
        "program": program.astype(str),
        "base_mean": mu0,
        "dispersion": phi,
        "cohort_shift_log2": shift,
    })
    return counts_df, samples, truth
