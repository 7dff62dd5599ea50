"""Identity readout node: per-frame ArcFace similarity to the reference (CSIM) with a plot."""

from __future__ import annotations

import torch

from ..stableanimator_core.pipeline.conditioning import to_uint8_rgb
from ..stableanimator_core.errors import InputError
from ..stableanimator_core.loading.catalogue import PROVIDER_CHOICES
from ..stableanimator_core.identity import load_antelopev2
from ..stableanimator_core.identity.score import plot_scores, score_frames
from . import comfy_bridge as bridge
from .payloads import FACE
from .node_text import text_ui


class StableAnimatorIdentityScore:
    DESCRIPTION = ("Scores how well each generated frame keeps the reference identity: face detection, ArcFace "
                   "(antelopev2 glintr100) embedding and cosine similarity to the reference face, the CSIM metric the "
                   "paper reports. Compare seeds, HJB on/off or alignment modes at a glance.")
    CATEGORY = "StableAnimator"
    FUNCTION = "score"
    RETURN_TYPES = ("FLOAT", "STRING", "IMAGE")
    RETURN_NAMES = ("scores", "summary", "plot")
    OUTPUT_IS_LIST = (True, False, False)
    OUTPUT_TOOLTIPS = ("Similarity per frame (-1 where no face was found).",
                       "Mean / min / worst frame / frames without a face (also shown on the node).",
                       "Similarity over frames; red x = no face found.")
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "Generated frames (e.g. from StableAnimator Decode)."}),
            "face": (FACE, {"tooltip": "The reference identity from StableAnimator Face Embed."}),
            "provider": (list(PROVIDER_CHOICES), {"default": "auto", "tooltip": "onnxruntime device."}),
        }}

    def score(self, frames, face, provider):
        if face.embedding is None:
            raise InputError("the identity readout needs a reference identity: set StableAnimator Face Embed's mode "
                             "to 'identity'")
        model = load_antelopev2(str(bridge.insightface_root()), provider)
        result = score_frames([to_uint8_rgb(f) for f in frames], face.embedding, model)
        plot = plot_scores(result)
        values = [-1.0 if s is None else float(s) for s in result.scores]
        # "text" for API clients; the text panel on the node for people comparing runs
        return {"ui": {"text": [result.summary()], **text_ui((result.summary(), False))},
                "result": (values, result.summary(), torch.from_numpy(plot).float()[None] / 255.0)}


NODE_CLASS_MAPPINGS = {"StableAnimatorIdentityScore": StableAnimatorIdentityScore}
NODE_DISPLAY_NAME_MAPPINGS = {"StableAnimatorIdentityScore": "StableAnimator Identity Score (CSIM)"}


class StableAnimatorFrameRate:
    DESCRIPTION = ("Multiplies a frame rate, e.g. the driving video's fps by the factor of a frame interpolation "
                   "(RIFE/FILM x2), so that the saved video keeps the driving video's duration and speed.")
    CATEGORY = "StableAnimator/utils"
    FUNCTION = "scale"
    RETURN_TYPES = ("FLOAT",)
    RETURN_NAMES = ("fps",)
    OUTPUT_TOOLTIPS = ("fps x multiplier, for CreateVideo's fps.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "fps": ("FLOAT", {"forceInput": True, "tooltip": "A frame rate, e.g. the fps output of Get Video "
                                                             "Components on the driving video."}),
            "multiplier": ("FLOAT", {"default": 2.0, "min": 0.01, "max": 64.0, "step": 0.5,
                                     "tooltip": "Frames per original frame after interpolation (RIFE multiplier)."}),
        }}

    def scale(self, fps, multiplier):
        if not fps > 0:
            raise InputError(f"the frame rate must be positive, got {fps!r}: connect a video's fps")
        return (float(fps) * float(multiplier),)


NODE_CLASS_MAPPINGS["StableAnimatorFrameRate"] = StableAnimatorFrameRate
NODE_DISPLAY_NAME_MAPPINGS["StableAnimatorFrameRate"] = "StableAnimator Frame Rate x"
