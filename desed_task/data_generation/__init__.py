"""DESED-shaped data generation, one folder per audience.

- :mod:`.scaper`: what every generator shares: scaper on NumPy 2, soundbank indexing, label
  samplers, the project's soundscape draws and rendering, JAMS to DESED tables;
- :mod:`.demo`: the procedural soundbank and the demo dataset (``python -m
  desed_task.data_generation.demo``; the ``demo`` extra);
- :mod:`.dcase2021`: the 2021 recipe's data: Zenodo downloads, real clips from YouTube, the 2021
  soundbank and soundscapes drawn as 2021 drew them, ``generate_dcase_task4_2021.py``'s command
  line (the ``datagen`` extra).

``demo`` and ``dcase2021`` import from ``scaper`` only, never from each other.
"""
