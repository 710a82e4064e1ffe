"""tinygen: compile weight-shared, low-rank Conformer encoders to MCU firmware."""

__version__ = "0.1.0"
