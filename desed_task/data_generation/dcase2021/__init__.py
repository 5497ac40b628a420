"""The DCASE 2021 task 4 data (``generate_dcase_task4_2021.py``, the ``datagen`` extra): Zenodo
downloads (``downloads``, ``raw_datasets``), real clips (``real_audio``), the 2021 soundbank
(``soundbank``) and soundscapes drawn as 2021 drew them (``soundscapes``), the whole run
(``generate``) and its command line (``cli``)."""
