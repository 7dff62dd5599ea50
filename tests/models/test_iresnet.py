"""IResNet: released-checkpoint layout (iresnet100, 925 keys) and the parity fixture's tiny model."""

import json

import pytest
import torch
from safetensors.torch import load_file

from stableanimator_core.errors import CheckpointError, InputError
from stableanimator_core.loading.iresnet_file import infer_iresnet_config, load_iresnet, load_iresnet_file
from stableanimator_core.models.iresnet import IResNet, iresnet100


def test_iresnet100_matches_released_glintr100_keys_and_shapes(parity):
    expected = json.loads((parity / "fullsize_keys.json").read_text())["face_embedding_extractor"]
    with torch.device("meta"):
        model = iresnet100()
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    want = {k: v["shape"] for k, v in expected["keys"].items()}
    assert len(got) == expected["num_tensors"] == 925
    assert set(got) == set(want), (sorted(set(got) ^ set(want)))[:10]
    mismatched = [k for k in want if got[k] != want[k]]
    assert not mismatched, mismatched[:10]
    assert sum(v.numel() for v in model.state_dict().values()) == expected["num_elements"]


def test_tiny_fixture_loads_strictly_and_reproduces_reference_embedding(parity):
    config = json.loads((parity / "weights" / "configs.json").read_text())["face_embedding_extractor"]
    model = load_iresnet_file(parity / "weights" / "face_embedding_extractor.safetensors", config)
    assert model.layers_config == (1, 1, 1, 1) and model.num_features == 128
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    inputs = load_file(str(parity / "inputs" / "inputs.safetensors"))
    with torch.no_grad():
        emb = model(inputs["hjb_reference_face_crop_112"])
    want = inputs["hjb_reference_face_embedding"]
    assert emb.shape == want.shape == (1, 128)
    assert (emb - want).abs().max() / want.abs().max() < 1e-5


def test_config_is_inferred_from_keys(parity):
    sd = load_file(str(parity / "weights" / "face_embedding_extractor.safetensors"))
    assert infer_iresnet_config(sd) == {"layers": [1, 1, 1, 1], "num_features": 128}
    model = load_iresnet(sd)
    assert torch.equal(model.fc.weight, sd["fc.weight"])


def test_wrong_weights_raise_checkpoint_error(parity):
    sd = load_file(str(parity / "weights" / "face_embedding_extractor.safetensors"))
    del sd["features.running_var"]
    with pytest.raises(CheckpointError, match="features.running_var"):
        load_iresnet(sd)
    with pytest.raises(CheckpointError, match="not an IResNet"):
        load_iresnet({"conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not found"):
        load_iresnet_file(parity / "does_not_exist.pth")


def test_pth_roundtrip_and_input_size_check(tmp_path):
    torch.manual_seed(0)
    model = IResNet([1, 1, 1, 1], num_features=16).eval()
    path = tmp_path / "face.pth"
    torch.save(model.state_dict(), path)
    loaded = load_iresnet_file(path)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(InputError, match="112"):
        loaded(torch.zeros(1, 3, 96, 96))
