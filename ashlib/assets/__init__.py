"""Benchmarks and networks: the data sets (:mod:`~ashlib.assets.data`) and their verified downloads
(:mod:`~ashlib.assets.fetch`, against ``data_manifest.yaml``), networks and their training
(:mod:`~ashlib.assets.models`), self-verifying cache entries (:mod:`~ashlib.assets.cache`), hooks at a
named layer (:mod:`~ashlib.assets.placement`) and cached activations (:mod:`~ashlib.assets.features`)."""
