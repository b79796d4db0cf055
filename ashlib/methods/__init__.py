"""The OOD methods, one module per paper, each docstring citing it: ASH (:mod:`~ashlib.methods.shaping`,
its compiled pass :mod:`~ashlib.methods._kernels`), SCALE (:mod:`~ashlib.methods.scale`), the activation
magnitude control (:mod:`~ashlib.methods.magnitude`), the classic scores (:mod:`~ashlib.methods.scores`),
Mahalanobis (:mod:`~ashlib.methods.mahalanobis`), NAC (:mod:`~ashlib.methods.nac`), MiSP
(:mod:`~ashlib.methods.misp`); :mod:`~ashlib.methods.detector` holds the two kinds of entry and
:mod:`~ashlib.methods.registry` names every method."""
