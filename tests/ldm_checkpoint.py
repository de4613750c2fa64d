"""Write a diffusers Stable Diffusion 2 pipeline as one original-layout checkpoint.

The single .safetensors files people share (the CompVis/Stability layout that A1111
and ComfyUI load) name tensors as the original training code did:
`model.diffusion_model.input_blocks.1.0.in_layers.0.weight` rather than
`unet.down_blocks.0.resnets.0.norm1.weight`. No such file can be downloaded in a
test, so this writes the tiny stand-in in that layout, and the daemon's real
single-file loading (diffusers' converters) must turn it back into the same model.

Only what an SD 2.x pipeline has: UNet with linear-projection transformers, the
KL VAE, an OpenCLIP text tower.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TEXT = "cond_stage_model.model."

_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_TEXT_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def ldm_state_dict(pipe) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    out.update(_unet(pipe.unet))
    out.update(_vae(pipe.vae))
    out.update(_text_encoder(pipe.text_encoder))
    return {key: value.detach().contiguous().clone() for key, value in out.items()}


def write_ldm_checkpoint(pipe, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file(ldm_state_dict(pipe), str(path))
    return Path(path)


def _rename(name: str, table: dict[str, str]) -> str:
    head, _, leaf = name.rpartition(".")  # leaf: weight or bias
    return f"{table.get(head, head)}.{leaf}"


def _unet(unet) -> dict[str, torch.Tensor]:
    per_block = unet.config.layers_per_block + 1  # resnets (+ attention) and a down/upsampler
    has_attention = [hasattr(block, "attentions") for block in unet.up_blocks]
    out = {}
    for name, tensor in unet.state_dict().items():
        if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name):
            # The original numbers its blocks flat: input_blocks count from 1 (0 is conv_in),
            # and in each, slot 0 holds the resnet and slot 1 the attention.
            side, block, part, layer, rest = m[1], int(m[2]), m[3], int(m[4]), m[5]
            index = block * per_block + layer + (1 if side == "down" else 0)
            slot, rest = (0, _rename(rest, _UNET_RESNET)) if part == "resnets" else (1, rest)
            key = f"{'input' if side == 'down' else 'output'}_blocks.{index}.{slot}.{rest}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", name):
            key = f"input_blocks.{(int(m[1]) + 1) * per_block}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", name):
            key = f"middle_block.{2 * int(m[1])}.{_rename(m[2], _UNET_RESNET)}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", name):
            key = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", name):
            block = int(m[1])
            slot = 2 if has_attention[block] else 1  # after the attention, if the block has one
            key = f"output_blocks.{block * per_block + per_block - 1}.{slot}.conv.{m[2]}"
        else:
            key = _rename(name, _UNET_TOP)
        out[UNET + key] = tensor
    return out


def _vae(vae) -> dict[str, torch.Tensor]:
    blocks = len(vae.config.block_out_channels)
    out = {}
    for name, tensor in vae.state_dict().items():
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
            key = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}".replace("conv_shortcut", "nin_shortcut")
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", name):
            key = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
            # The original decoder counts its levels from the bottom up.
            key = f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{m[3]}".replace("conv_shortcut", "nin_shortcut")
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", name):
            key = f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", name):
            key = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}".replace("conv_shortcut", "nin_shortcut")
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", name):
            key = f"{m[1]}.mid.attn_1.{_rename(m[2], _VAE_ATTENTION)}"
            if tensor.ndim == 2:  # the original attention projections are 1x1 convolutions
                tensor = tensor[:, :, None, None]
        else:
            key = name.replace("conv_norm_out", "norm_out")
        out[VAE + key] = tensor
    return out


def _text_encoder(text_encoder) -> dict[str, torch.Tensor]:
    # transformers 5 dropped the "text_model." level that 4.x had; accept both.
    state = {key.removeprefix("text_model."): value for key, value in text_encoder.state_dict().items()}
    out = {
        TEXT + "token_embedding.weight": state["embeddings.token_embedding.weight"],
        TEXT + "positional_embedding": state["embeddings.position_embedding.weight"],
        TEXT + "ln_final.weight": state["final_layer_norm.weight"],
        TEXT + "ln_final.bias": state["final_layer_norm.bias"],
        # OpenCLIP's pooled projection: in every SD 2 file, unused by the pipeline.
        TEXT + "text_projection": torch.eye(text_encoder.config.hidden_size),
    }
    for index in range(text_encoder.config.num_hidden_layers):
        prefix = f"encoder.layers.{index}."
        target = f"{TEXT}transformer.resblocks.{index}."
        for leaf in ("weight", "bias"):
            # One fused in-projection for q, k and v, as torch.nn.MultiheadAttention keeps it.
            fused = torch.cat([state[f"{prefix}self_attn.{p}_proj.{leaf}"] for p in "qkv"])
            out[f"{target}attn.in_proj_{leaf}"] = fused
            for ours, theirs in _TEXT_LAYER.items():
                out[f"{target}{theirs}.{leaf}"] = state[f"{prefix}{ours}.{leaf}"]
    return out
