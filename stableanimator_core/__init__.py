"""StableAnimator in plain PyTorch: models, sampler, HJB face optimisation, preprocessing, checkpoint loading.

Never imports ComfyUI; the ComfyUI nodes in ``nodes/`` are thin adapters over this package.
Command line: ``python -m stableanimator_core --help``.
"""

__version__ = "0.1.0"
