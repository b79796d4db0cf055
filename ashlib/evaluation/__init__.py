"""The evaluation engine (:mod:`~ashlib.evaluation.experiments`): registered methods run on a network's
cached features, scored against a benchmark's OOD sets, as tables with intervals."""
