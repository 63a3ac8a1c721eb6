"""Quantize: a dense network becomes an int8 ``.tflite``, read back as arrays, and run by TFLM.

* :mod:`denselab.int8.convert`: TensorFlow's ``TFLiteConverter`` (float and full-integer
  int8), and the one place calibration samples are drawn.
* :mod:`denselab.int8.tflite`: the checked flatbuffer reader, with the requantization
  constants TFLM derives at ``Prepare``.
* :mod:`denselab.int8.tflm_math`: TFLite's integer helpers (``QuantizeMultiplier``, ...).
* :mod:`denselab.int8.tflm`: the oracle, the real TensorFlow Lite Micro interpreter.
"""
