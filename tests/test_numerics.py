"""Non-finite results stop the run with the stage and the precision to use instead."""

from __future__ import annotations

import pytest
import torch

from stableanimator_core.numerics import NonFiniteError, require_finite


@pytest.mark.parametrize("dtype, advice", [(torch.float16, "Use precision bf16 instead"),
                                           (torch.bfloat16, "Use precision fp32 instead"),
                                           (torch.float32, "precision is not the cause")])
def test_non_finite_values_name_the_stage_and_a_precision(dtype, advice):
    ok = torch.ones(3)
    assert require_finite(ok, "Sampling", dtype) is ok
    bad = torch.tensor([1.0, float("nan"), float("inf")])
    with pytest.raises(NonFiniteError, match="VAE decoding produced 2 NaN/infinite values of 3") as info:
        require_finite(bad, "VAE decoding", dtype)
    assert advice in str(info.value)
