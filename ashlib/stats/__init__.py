"""The numbers a detector is judged by: threshold-free metrics (AUROC, AUPR), FPR at 95% TPR, accuracy
(:mod:`~ashlib.stats.metrics`), and their bootstrap intervals and paired comparisons
(:mod:`~ashlib.stats.uncertainty`). Arrays in, numbers out; no networks."""
