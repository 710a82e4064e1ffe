"""The golden reference: numpy int8 kernels that define tinygen's integer semantics.

``kernels`` reproduces TensorFlow Lite Micro's *reference* kernels bit for bit (tests check
every op against the TFLM interpreter). Each op is split the way TFLM splits it: a
``prepare_<op>`` that turns float32 scales into integer multipliers, shifts and clamps
(TFLM's Prepare, done here at compile time), and an ``<op>_s8`` kernel that only runs
integer arithmetic (TFLM's Eval, later the generated C).

``interpreter`` runs an int8 graph with those kernels (the golden outputs); ``floatref``
runs the float graph (calibration ranges, SNR).

May import only ``tinygen.errors`` and the IR (``tinygen.compiler.ir``): never the
compiler's stages, which are built on it. See ``tinygen.layers``.
"""
