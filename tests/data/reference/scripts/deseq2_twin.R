# R golden for helpers.methods.deseq2 on the full-size simulated twin (20,000 genes x 31 samples).
#
# Usage (from the project root):
#   Rscript tests/data/reference/scripts/deseq2_twin.R [indir] [outdir] [covariate] [genes_kept] [reps]
# Defaults: indir = outdir = tests/data/reference/twin_full, no covariate, all genes, 2 timed runs.
#
# Input:  <indir>/counts.tsv.gz (genes x samples, integers), <indir>/samples.csv (sample_id,
#         cohort, response). Design ~ [covariate +] response, NR the reference level.
# Output: <outdir>/deseq2.tsv.gz   results(dds, contrast = c("response", "CR", "NR")) (defaults:
#                                  alpha = 0.1, Cook's cutoff, independent filtering) followed by
#                                  the per-gene intermediates of mcols(dds) (dispersions, iterations,
#                                  maxCooks, replace, ...), numbers printed with 17 significant digits
#         <outdir>/size_factors.tsv sizeFactors(dds)
#         <outdir>/timing.json      elapsed and CPU seconds of DESeq() + results() per run (one R
#                                   process, serial), their minima, the load average at the start
#         <outdir>/sessionInfo.txt  sessionInfo()
suppressPackageStartupMessages(library(DESeq2))

args <- commandArgs(trailingOnly = TRUE)
indir <- if (length(args) >= 1) args[1] else "tests/data/reference/twin_full"
outdir <- if (length(args) >= 2) args[2] else indir
covariate <- if (length(args) >= 3 && nzchar(args[3])) args[3] else NULL
genes_kept <- if (length(args) >= 4 && nzchar(args[4])) args[4] else NULL
reps <- if (length(args) >= 5) as.integer(args[5]) else 2L
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)

counts <- as.matrix(read.delim(gzfile(file.path(indir, "counts.tsv.gz")), row.names = 1,
                               check.names = FALSE))
storage.mode(counts) <- "integer"
if (!is.null(genes_kept)) counts <- counts[readLines(genes_kept), , drop = FALSE]
samples <- read.csv(file.path(indir, "samples.csv"), row.names = 1, check.names = FALSE)
samples <- samples[colnames(counts), , drop = FALSE]
samples$response <- factor(samples$response, levels = c("NR", "CR"))
if (is.null(covariate)) {
  design <- ~ response
} else {
  samples[[covariate]] <- factor(samples[[covariate]])
  design <- as.formula(paste("~", covariate, "+ response"))
}

dds0 <- DESeqDataSetFromMatrix(counts, samples, design)
load_start <- tryCatch(paste(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3], collapse = " "),
                       error = function(e) "unknown")
elapsed <- cpu <- numeric(reps)
for (r in seq_len(reps)) {
  t0 <- proc.time()
  dds <- DESeq(dds0, quiet = TRUE)
  res <- results(dds, contrast = c("response", "CR", "NR"))
  dt <- proc.time() - t0
  elapsed[r] <- dt[["elapsed"]]
  cpu[r] <- dt[["user.self"]] + dt[["sys.self"]]
}

mc <- as.data.frame(mcols(dds))
extra <- c("baseVar", "allZero", "dispGeneEst", "dispGeneIter", "dispFit", "dispersion",
           "dispIter", "dispOutlier", "dispMAP", "betaConv", "betaIter", "deviance", "maxCooks",
           "replace")
extra <- extra[extra %in% names(mc)]
out <- data.frame(gene = rownames(res), as.data.frame(res), mc[, extra, drop = FALSE],
                  check.names = FALSE)
fmt <- function(x) {
  if (is.logical(x)) return(ifelse(is.na(x), "NA", ifelse(x, "TRUE", "FALSE")))
  if (is.numeric(x)) return(ifelse(is.na(x), "NA", sprintf("%.17g", x)))
  x
}
out[] <- lapply(out, fmt)
con <- gzfile(file.path(outdir, "deseq2.tsv.gz"), "w")
write.table(out, con, sep = "\t", quote = FALSE, row.names = FALSE)
close(con)
write.table(data.frame(sample = colnames(dds), sizeFactor = sprintf("%.17g", sizeFactors(dds))),
            file.path(outdir, "size_factors.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)

fitType <- attr(dispersionFunction(dds), "fitType")
coefs <- attr(dispersionFunction(dds), "coefficients")
json <- sprintf(paste0('{\n  "what": "DESeq() + results(contrast = c(\\"response\\", \\"CR\\", \\"NR\\")), elapsed seconds",\n',
                       '  "design": "%s",\n  "n_genes": %d,\n  "n_samples": %d,\n',
                       '  "elapsed_seconds": [%s],\n  "elapsed_min": %.3f,\n',
                       '  "cpu_seconds": [%s],\n  "cpu_min": %.3f,\n',
                       '  "load_average_at_start": "%s",\n',
                       '  "fitType": "%s",\n  "dispersion_coefficients": [%s],\n',
                       '  "dispPriorVar": %.17g,\n  "varLogDispEsts": %.17g,\n',
                       '  "n_replaced_refit": %d,\n  "R": "%s",\n  "DESeq2": "%s",\n',
                       '  "cpus": %d,\n  "threads": "serial (one R process, BLAS single-threaded)"\n}\n'),
                paste(deparse(design), collapse = ""), nrow(dds), ncol(dds),
                paste(sprintf("%.3f", elapsed), collapse = ", "), min(elapsed),
                paste(sprintf("%.3f", cpu), collapse = ", "), min(cpu), load_start, fitType,
                paste(sprintf("%.17g", coefs), collapse = ", "),
                attr(dispersionFunction(dds), "dispPriorVar"),
                attr(dispersionFunction(dds), "varLogDispEsts"),
                sum(mcols(dds)$replace, na.rm = TRUE), R.version.string,
                as.character(packageVersion("DESeq2")), parallel::detectCores())
writeLines(json, file.path(outdir, "timing.json"))
writeLines(capture.output(sessionInfo()), file.path(outdir, "sessionInfo.txt"))
cat("done:", outdir, "elapsed", elapsed, "\n")
