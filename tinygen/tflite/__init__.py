"""TFLite flatbuffers: a minimal writer, and a runner for the TFLM interpreter.

``writer`` builds one-subgraph ``.tflite`` models through the object API of the schema
that the ``tflite_micro`` wheel ships; a constant keyed once is stored once, which is how
shared weights stay shared in an exported model. ``runner`` executes such a model under
TFLM, the oracle that ``tinygen.reference.kernels`` is tested against bit for bit.

May import the compiler and the reference; never ``tinygen.speech``, the targets or the
command modules. See ``tinygen.layers``.
"""
