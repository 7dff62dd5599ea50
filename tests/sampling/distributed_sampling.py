"""Run by ``test_parallel.py`` under ``torch.distributed.run`` (gloo, CPU): samples the parity fixture's tiny
models with this process's share of the work and, on rank 0, saves the latents of every case.

Usage: python -m torch.distributed.run --nproc-per-node N tests/distributed_sampling.py FIXTURE OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from any folder

from stableanimator_core.sampling import parallel  # noqa: E402

# (name, split mode, sampler settings, HJB mode or None); shared with the single-process side of the test
CASES = [
    ("windows", "windows", dict(steps=2, tile_size=3, tile_overlap=1, seed=5), None),
    ("cfg", "cfg", dict(steps=2, tile_size=3, tile_overlap=1, seed=5, batch_cfg=False), None),
    ("hjb", "windows", dict(steps=2, tile_size=3, tile_overlap=1, seed=5), "memory_bounded"),
]
FRAMES = 7  # windows [0,1,2] [0,3,4] [0,5,6]


def run_case(models, inputs, case, split=None) -> torch.Tensor:
    from stableanimator_core.hjb.sampler_hook import HJBStepHook
    from stableanimator_core.hjb import HJBSettings
    from stableanimator_core.pipeline.animate import ConditioningSettings, build_conditioning, run_sampler
    from stableanimator_core.sampling.sampler import SamplerSettings

    _, _, sampler_kw, hjb_mode = case
    cond = build_conditioning(models, inputs.reference, inputs.arcface_embedding, inputs.poses[:FRAMES],
                              ConditioningSettings(width=64, height=128), seed=7)
    refiner = None
    if hjb_mode is not None:
        boxes = [tuple(b) for b in inputs.settings["target_bboxes_yyxx"]][:FRAMES]
        hjb = HJBSettings(num_iterations=2, start_step=0, end_step=1, mode=hjb_mode, decode_chunk_size=2)
        refiner = HJBStepHook.build(models.vae, models.face_embedder, inputs.reference,
                                       tuple(inputs.settings["reference_bbox_yyxx"]), boxes, hjb, split=split)
    return run_sampler(models, cond, SamplerSettings(**sampler_kw), refiner, split=split)


def main(fixture: Path, out_dir: Path) -> None:
    from stableanimator_core.parity.fixture import load_inputs, load_models

    models, inputs = load_models(fixture), load_inputs(fixture)
    for case in CASES:
        split = parallel.split_from_environment(case[1])
        latents = run_case(models, inputs, case, split)
        if split.rank == 0:
            torch.save(latents, out_dir / f"{case[0]}.pt")
    parallel.finish(split)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
