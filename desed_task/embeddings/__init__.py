"""Pretrained (BEATs) embeddings of audio clips, stored as the DCASE 2023 recipe stored them.

``python -m desed_task.embeddings --beats BEATS.pt --folder DIR --out E.hdf5`` or
``--conf_file CONF.yaml`` (every set of the config); see :mod:`desed_task.embeddings.cli`.
Training reads the files by clip name (:mod:`desed_task.data.embeddings_reader`); the demo and the
tests write a stand-in BEATs (:mod:`desed_task.embeddings.standin`).
"""
