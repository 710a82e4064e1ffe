"""The speech model and its training: the second product beside the compiler.

- ``config``: the Conformer's frozen dataclass config and the presets;
- ``model``: the Conformer with the paper's four levels of weight sharing;
- ``checkpoint``: save/load (``weights_only=True``), ``preset:NAME`` models;
- ``features``: the log-mel front end; ``calib``: calibration inputs from audio;
- ``data/``: corpora (espeak-ng synthesis, LibriSpeech-format folders) and the Dataset;
- ``train``: CTC training; ``evaluate``: CER/WER of float, int8 golden and generated C;
- ``summary``: unique vs virtual parameters, MACs, who shares what.

May import the compiler, the reference, the targets and the build command (``evaluate``
measures compiled models). The compiler side never imports this package: see
``tinygen.layers``.
"""
