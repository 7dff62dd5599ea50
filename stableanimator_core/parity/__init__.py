"""Parity against the official code: reading a fixture folder (``shared/parity`` format) and replaying its runs.

``python -m stableanimator_core.parity replay|compare FIXTURE RUN OUT`` (see :mod:`.replay`).
"""
