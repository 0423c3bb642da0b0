# R golden for helpers.methods.gsva's Poisson kernel on tied low counts (GSVA 1.46, method "gsva"),
# and for helpers.methods.rmath.ppois (R's nmath ppois, the function GSVA's C code calls).
#
# Usage (from the project root):
#   Rscript tests/data/reference/scripts/gsva_poisson_ties.R [outdir]
# Default outdir: tests/data/reference/gsva_poisson_ties
#
# The script makes its own input (seeded), so it is the whole recipe:
#   counts.tsv.gz   300 genes x 12 samples of integer counts in 0..20, in blocks built to tie:
#                     P001-P120 random Poisson genes (means 0.3-12, capped at 20: many ties within rows)
#                     A001-A040 one row repeated 40 times (identical genes)
#                     B001-B060 60 random permutations of one row (equal kernel terms per sample,
#                               added in other orders: ties in exact arithmetic, a few bits apart in R)
#                     C001-C040 two-level genes (0 / 1, 2 / 3 or 19 / 20 counts)
#                     D001-D039 mostly zero with one or two non-zero samples; Z001 all zero (dropped)
#   sets.gmt        6 gene sets of 10-60 genes mixing the blocks (one names an absent gene and Z001)
# and what GSVA 1.46 computes on it, numbers printed with 17 significant digits:
#   gsva_poisson.tsv.gz          gsva(counts, kcdf = "Poisson", mx.diff = TRUE), sets x samples
#   gsva_poisson_maxdev.tsv.gz   the same with mx.diff = FALSE
#   density_poisson.tsv.gz       GSVA's per-gene kernel log-odds (GSVA:::compute.gene.density on
#                                the genes its filter keeps), genes x samples
#   gsva_none.tsv.gz             gsva(counts, kcdf = "none", mx.diff = TRUE) (the empirical CDF)
#   ppois.tsv.gz                 ppois(q, lambda) (lower tail) on a grid of (q, lambda) that visits
#                                every branch of R's pgamma for the arguments GSVA uses (q >= 0,
#                                lambda = count + 0.5) and some other lambdas; columns q, lambda, p
#   sessionInfo.txt              sessionInfo()
suppressPackageStartupMessages(library(GSVA))

args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "tests/data/reference/gsva_poisson_ties"
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)
set.seed(20220215)
n <- 12L
samples <- sprintf("S%02d", seq_len(n))

rows <- list()
for (g in 1:120) rows[[sprintf("P%03d", g)]] <- pmin(rpois(n, runif(1, 0.3, 12)), 20L)
base_a <- pmin(rpois(n, 5), 20L)
for (g in 1:40) rows[[sprintf("A%03d", g)]] <- base_a
base_b <- pmin(rpois(n, 7), 20L)
for (g in 1:60) rows[[sprintf("B%03d", g)]] <- sample(base_b)
levels <- list(c(0L, 1L), c(2L, 3L), c(19L, 20L))
for (g in 1:40) {
  lv <- levels[[(g - 1L) %% 3L + 1L]]
  row <- rep(lv[1], n)
  row[sample(n, sample(1:5, 1))] <- lv[2]
  rows[[sprintf("C%03d", g)]] <- row
}
for (g in 1:39) {
  row <- rep(0L, n)
  row[sample(n, sample(1:2, 1))] <- sample(1:20, 1)
  rows[[sprintf("D%03d", g)]] <- row
}
rows[["Z001"]] <- rep(0L, n)
counts <- do.call(rbind, rows)
storage.mode(counts) <- "integer"
colnames(counts) <- samples
stopifnot(nrow(counts) == 300L, min(counts) >= 0L, max(counts) <= 20L)

con <- gzfile(file.path(outdir, "counts.tsv.gz"), "w")
writeLines(paste(c("gene", samples), collapse = "\t"), con)
writeLines(paste(rownames(counts), apply(counts, 1, paste, collapse = "\t"), sep = "\t"), con)
close(con)

genes <- rownames(counts)
pick <- function(prefix, idx) sprintf(paste0(prefix, "%03d"), idx)
sets <- list(
  identical_block = c(pick("A", 1:12), pick("P", sample(120, 6))),
  permuted_block = c(pick("B", sample(60, 40)), pick("P", sample(120, 20))),
  two_level = c(pick("C", sample(40, 25)), pick("A", 30:34)),
  sparse_genes = c(pick("D", sample(39, 20)), pick("B", 1:5)),
  random_genes = pick("P", sample(120, 30)),
  with_absent = c(pick("D", 1:9), "Z001", "NOT_A_GENE")
)
con <- file(file.path(outdir, "sets.gmt"), "w")
for (s in names(sets)) writeLines(paste(c(s, "gsva_poisson_ties fixture", sets[[s]]), collapse = "\t"), con)
close(con)

write_scores <- function(es, file, first = "set") {
  con <- gzfile(file.path(outdir, file), "w")
  writeLines(paste(c(first, colnames(es)), collapse = "\t"), con)
  body <- apply(es, 1, function(r) paste(sprintf("%.17g", r), collapse = "\t"))
  writeLines(paste(rownames(es), body, sep = "\t"), con)
  close(con)
}
run <- function(kcdf, mx.diff) {
  # warns that the all-zero gene Z001 is dropped; that is part of the fixture
  suppressWarnings(gsva(counts, sets, method = "gsva", kcdf = kcdf, mx.diff = mx.diff,
                        min.sz = 1, max.sz = Inf, parallel.sz = 1L, verbose = FALSE))
}
write_scores(run("Poisson", TRUE), "gsva_poisson.tsv.gz")
write_scores(run("Poisson", FALSE), "gsva_poisson_maxdev.tsv.gz")
write_scores(run("none", TRUE), "gsva_none.tsv.gz")

x <- suppressWarnings(GSVA:::.filterFeatures(counts, "gsva"))
d <- GSVA:::compute.gene.density(x, seq_len(ncol(x)), rnaseq = TRUE, kernel = TRUE)
dimnames(d) <- dimnames(x)
write_scores(d, "density_poisson.tsv.gz", "gene")

# ---- ppois on a grid: GSVA's arguments (q = count, lambda = count + 0.5) over small and large
# counts, pairs near each other (R's asymptotic branch needs q and lambda above ~200 and within
# ~20%), far apart (the series and continued-fraction branches) and a few other lambdas
small <- 0:60
grid <- expand.grid(q = small, lambda = small + 0.5)
big <- c(100, 150, 199, 200, 201, 250, 300, 500, 1000, 2000, 5000, 1e4, 3e4, 1e5, 3e5, 1e6)
grid <- rbind(grid, expand.grid(q = c(small, big), lambda = big + 0.5),
              expand.grid(q = big, lambda = small + 0.5))
centre <- round(10^runif(3000, 2, 6.5))
near <- data.frame(q = centre, lambda = pmax(round(centre * exp(rnorm(3000, 0, 0.15))), 0) + 0.5)
far <- data.frame(q = round(10^runif(2000, 0, 6)), lambda = round(10^runif(2000, 0, 6)) + 0.5)
other <- data.frame(q = round(10^runif(1000, 0, 4)), lambda = 10^runif(1000, -0.3, 4))
grid <- rbind(grid, near, far, other)
grid <- grid[!duplicated(grid), ]
p <- ppois(grid$q, grid$lambda)
con <- gzfile(file.path(outdir, "ppois.tsv.gz"), "w")
writeLines("q\tlambda\tp", con)
writeLines(sprintf("%.17g\t%.17g\t%.17g", grid$q, grid$lambda, p), con)
close(con)

writeLines(capture.output(sessionInfo()), file.path(outdir, "sessionInfo.txt"))
