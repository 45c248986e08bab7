"""ltx2_batch: declarative batch rendering for Lightricks' LTX-2 audio+video model."""

__version__ = "0.1.0"
