"""Exporting a trained SED model for deployment: ONNX with the features inside
(``python -m desed_task.export``, :func:`desed_task.export.onnx.export_onnx`)."""
