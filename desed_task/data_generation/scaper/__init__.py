"""Soundscape code shared by the demo and the 2021 generator: scaper on NumPy 2 (``compat``),
soundbank indexing (``soundbank``), label samplers, the project's own draws and rendering
(``soundscapes``) and JAMS to DESED tables (``annotations``)."""
