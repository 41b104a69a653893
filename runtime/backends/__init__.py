"""Inference backends. Each runs fixed-shape tile batches of one ONNX model (see :class:`Backend`)."""
