"""OpenStreetMap infrastructure sources: ``overpass``, ``pbf`` and ``off``."""
