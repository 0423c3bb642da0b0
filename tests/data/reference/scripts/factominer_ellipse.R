# Golden output for the group ellipses of Fig. 1B / 2C. The paper draws its PCA with
# factoextra::fviz_pca_ind(res, habillage = group, addEllipses = TRUE); factoextra's fviz() then
# uses its defaults ellipse.type = "norm", ellipse.level = 0.95, which ggpubr hands to
# ggplot2::stat_ellipse(type = "norm", level = 0.95). factoextra is not in Debian, so this script
# calls stat_ellipse directly on FactoMineR's scores (the same layer factoextra adds).
# Also the unscaled FactoMineR PCA (scale.unit = FALSE), the book's `pca_scale: false` reading.
# Input: the voom E matrix of r_outputs/counts_nobatch and the fixture's response labels.
# Run from tests/data/reference:  Rscript scripts/factominer_ellipse.R
suppressPackageStartupMessages({library(FactoMineR); library(ggplot2)})
E <- as.matrix(read.delim(gzfile("r_outputs/counts_nobatch/voom_E.tsv.gz"), row.names = 1, check.names = FALSE))
samples <- read.csv("fixture/samples_nobatch.csv", row.names = 1)
res <- PCA(t(E), scale.unit = TRUE, ncp = 5, graph = FALSE)
out <- "r_outputs/factominer"
d <- data.frame(x = res$ind$coord[, 1], y = res$ind$coord[, 2], group = samples[rownames(res$ind$coord), "response"])
p <- ggplot(d, aes(x, y, group = group)) + stat_ellipse(type = "norm", level = 0.95)
ell <- layer_data(p, 1)
ell$group <- levels(factor(d$group))[ell$group]
ell$point <- ave(seq_along(ell$x), ell$group, FUN = seq_along)
write.table(ell[, c("group", "point", "x", "y")], file.path(out, "ellipse_norm95.tsv"),
            sep = "\t", quote = FALSE, row.names = FALSE)
res0 <- PCA(t(E), scale.unit = FALSE, ncp = 5, graph = FALSE)
coord0 <- data.frame(sample = rownames(res0$ind$coord), res0$ind$coord, check.names = FALSE)
write.table(coord0, file.path(out, "ind_coord_unscaled.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
eig0 <- data.frame(component = rownames(res0$eig), res0$eig, check.names = FALSE)
write.table(eig0, file.path(out, "eig_unscaled.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
writeLines(capture.output(sessionInfo()), file.path(out, "sessionInfo_ellipse.txt"))
