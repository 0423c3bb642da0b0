# R golden for helpers.methods.gsva on data full of ties (GSVA 1.46, method "gsva").
#
# Usage (from the project root):
#   Rscript tests/data/reference/scripts/gsva_ties.R [outdir]
# Default outdir: tests/data/reference/gsva_ties
#
# The script makes its own input (seeded), so it is the whole recipe:
#   logexpr.tsv.gz  300 genes x 12 samples of log-expression with one decimal (every value is an
#                   integer divided by 10, written with one decimal, so Python and R read back the
#                   same doubles). The genes come in blocks built to tie:
#                     G001-G150 random genes (values rounded to 0.1: ties within rows)
#                     A001-A030 one row repeated 30 times (a block of identical genes)
#                     B001-B055 55 random permutations of one row (equal term multisets per
#                               sample: ties in exact arithmetic that only a fixed summation
#                               order keeps bit-identical)
#                     C001-C025 one row shifted by multiples of 0.1 (equal in exact decimal
#                               arithmetic, not in binary)
#                     D001-D030 two-level genes (3.0 / 3.1): genes with as many high samples tie
#                     E001-E009 one high outlier sample each; Z001 constant (dropped by GSVA)
#   counts.tsv.gz   the integer-count version: 10 * logexpr - 10 * min(logexpr) (same ties)
#   sets.gmt        6 gene sets of 10-60 genes mixing the blocks (one lists an absent gene and
#                   the constant gene)
# and what GSVA 1.46 computes on it, numbers printed with 17 significant digits:
#   gsva_gaussian.tsv.gz        gsva(logexpr, kcdf = "Gaussian", mx.diff = TRUE), sets x samples
#   gsva_gaussian_maxdev.tsv.gz the same with mx.diff = FALSE
#   gsva_poisson.tsv.gz         gsva(counts, kcdf = "Poisson", mx.diff = TRUE)
#   density_gaussian.tsv.gz     GSVA's per-gene kernel log-odds (GSVA:::compute.gene.density on the
#   density_poisson.tsv.gz      genes kept by GSVA's filter), genes x samples
#   pnorm_table.txt.gz          the normal CDF table GSVA's C code builds (pnorm(10 * i / 10000),
#                               i = 0..10000), one value a line
#   sessionInfo.txt             sessionInfo()
suppressPackageStartupMessages(library(GSVA))

args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "tests/data/reference/gsva_ties"
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)
set.seed(20220214)
n <- 12L
samples <- sprintf("S%02d", seq_len(n))

# ---- input: integer tenths (k / 10 is the double nearest the decimal, as strtod reads it)
tenths <- list()
for (g in 1:150) {
  mu <- rnorm(1, 60, 15)
  tenths[[sprintf("G%03d", g)]] <- round(mu + rnorm(n, 0, runif(1, 2, 10)))
}
base_a <- round(rnorm(n, 70, 6))
for (g in 1:30) tenths[[sprintf("A%03d", g)]] <- base_a
base_b <- round(rnorm(n, 55, 8))
for (g in 1:55) tenths[[sprintf("B%03d", g)]] <- sample(base_b)
base_c <- round(rnorm(n, 40, 5))
for (g in 1:25) tenths[[sprintf("C%03d", g)]] <- base_c + 3L * (g - 1L)
for (g in 1:30) {
  high <- sample(n, sample(1:5, 1))
  row <- rep(30, n)
  row[high] <- 31
  tenths[[sprintf("D%03d", g)]] <- row
}
for (g in 1:9) {
  row <- rep(50 + g, n)
  row[sample(n, 1)] <- 50 + g + 10 * g
  tenths[[sprintf("E%03d", g)]] <- row
}
tenths[["Z001"]] <- rep(45, n)
k <- do.call(rbind, tenths)
storage.mode(k) <- "integer"
colnames(k) <- samples
stopifnot(nrow(k) == 300L)
logexpr <- k / 10
counts <- k - min(k)

write_matrix <- function(m, file, fmt) {
  con <- gzfile(file.path(outdir, file), "w")
  writeLines(paste(c("gene", colnames(m)), collapse = "\t"), con)
  body <- apply(m, 1, function(r) paste(sprintf(fmt, r), collapse = "\t"))
  writeLines(paste(rownames(m), body, sep = "\t"), con)
  close(con)
}
write_matrix(logexpr, "logexpr.tsv.gz", "%.1f")
write_matrix(counts, "counts.tsv.gz", "%d")

# the inputs must read back bit for bit
back <- as.matrix(read.delim(gzfile(file.path(outdir, "logexpr.tsv.gz")), row.names = 1))
stopifnot(identical(unname(back), unname(logexpr)))

# ---- gene sets (sizes 10-60), named in a fixed order of members
genes <- rownames(k)
pick <- function(prefix, idx) sprintf(paste0(prefix, "%03d"), idx)
sets <- list(
  identical_block = c(pick("A", 1:10), pick("G", sample(150, 5))),
  permuted_block = c(pick("B", sample(55, 40)), pick("G", sample(150, 20))),
  shifted_and_two_level = c(pick("C", sample(25, 12)), pick("D", sample(30, 10))),
  two_level_mixed = c(pick("D", sample(30, 25)), pick("A", 21:25), pick("G", sample(150, 10))),
  random_genes = pick("G", sample(150, 30)),
  outliers = c(pick("E", 1:9), "Z001", "NOT_A_GENE")
)
con <- file(file.path(outdir, "sets.gmt"), "w")
for (s in names(sets)) writeLines(paste(c(s, "gsva_ties fixture", sets[[s]]), collapse = "\t"), con)
close(con)

# ---- GSVA 1.46 (old API), serial
write_scores <- function(es, file, first = "set") {
  con <- gzfile(file.path(outdir, file), "w")
  writeLines(paste(c(first, colnames(es)), collapse = "\t"), con)
  body <- apply(es, 1, function(r) paste(sprintf("%.17g", r), collapse = "\t"))
  writeLines(paste(rownames(es), body, sep = "\t"), con)
  close(con)
}
run <- function(x, kcdf, mx.diff) {
  # warns that the constant gene Z001 is dropped; that is part of the fixture
  suppressWarnings(gsva(x, sets, method = "gsva", kcdf = kcdf, mx.diff = mx.diff,
                        min.sz = 1, max.sz = Inf, parallel.sz = 1L, verbose = FALSE))
}
write_scores(run(logexpr, "Gaussian", TRUE), "gsva_gaussian.tsv.gz")
write_scores(run(logexpr, "Gaussian", FALSE), "gsva_gaussian_maxdev.tsv.gz")
write_scores(run(counts, "Poisson", TRUE), "gsva_poisson.tsv.gz")

# the kernel log-odds GSVA ranks, on the genes its filter keeps (here: all but the constant one)
density <- function(x, rnaseq) {
  x <- suppressWarnings(GSVA:::.filterFeatures(x, "gsva"))
  d <- GSVA:::compute.gene.density(x, seq_len(ncol(x)), rnaseq = rnaseq, kernel = TRUE)
  dimnames(d) <- dimnames(x)
  d
}
write_scores(density(logexpr, FALSE), "density_gaussian.tsv.gz", "gene")
write_scores(density(counts, TRUE), "density_poisson.tsv.gz", "gene")

# GSVA's initCdfs(): pnorm5(MAX_PRECOMPUTE * i / PRECOMPUTE_RESOLUTION), same operations in R
con <- gzfile(file.path(outdir, "pnorm_table.txt.gz"), "w")
writeLines(sprintf("%.17g", pnorm(10 * (0:10000) / 10000)), con)
close(con)

writeLines(capture.output(sessionInfo()), file.path(outdir, "sessionInfo.txt"))
