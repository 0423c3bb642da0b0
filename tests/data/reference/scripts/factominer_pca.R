# Golden output for the scaled PCA of Fig. 1B / 2C: FactoMineR::PCA(t(data)) with its default
# scale.unit = TRUE (every gene standardised), as the paper's public code calls it.
# Input: the voom E matrix of r_outputs/counts_nobatch (genes x samples).
# Run from tests/data/reference:  Rscript scripts/factominer_pca.R
suppressPackageStartupMessages(library(FactoMineR))
E <- as.matrix(read.delim(gzfile("r_outputs/counts_nobatch/voom_E.tsv.gz"), row.names = 1, check.names = FALSE))
res <- PCA(t(E), scale.unit = TRUE, ncp = 5, graph = FALSE)
out <- "r_outputs/factominer"
coord <- data.frame(sample = rownames(res$ind$coord), res$ind$coord, check.names = FALSE)
write.table(coord, file.path(out, "ind_coord.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
eig <- data.frame(component = rownames(res$eig), res$eig, check.names = FALSE)
write.table(eig, file.path(out, "eig.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
writeLines(capture.output(sessionInfo()), file.path(out, "sessionInfo.txt"))
