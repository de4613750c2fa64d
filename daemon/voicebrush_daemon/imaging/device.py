"""Which device, dtype and speed-ups an image pipeline runs with: pure decisions.

Kept apart from the engine so the choices for CUDA, MPS and low-VRAM cards are
plain data that tests check on a CPU-only machine, and so the benchmark can
build a "stock diffusers" plan to compare against.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class RuntimePlan:
    device: str  # "cuda", "mps" or "cpu"
    dtype: str  # "float16", "bfloat16" or "float32"
    # torch 2's scaled_dot_product_attention (flash / memory-efficient kernels on CUDA).
    sdpa: bool = True
    channels_last: bool = False  # NHWC UNet and VAE: faster convolutions on tensor cores
    fuse_qkv: bool = False  # one matmul for q, k, v instead of three
    compile_unet: bool = False  # torch.compile the UNet, warmed up at load
    compile_backend: str = "inductor"  # tests use "eager": Dynamo's tracing without code generation
    compile_mode: str = "default"  # inductor fusions; no CUDA graphs (the worker is not the main thread)
    cudnn_benchmark: bool = False  # pick the fastest conv kernels for the shapes seen
    # Low-VRAM: keep each model on the GPU only while it runs, decode the VAE in tiles.
    model_cpu_offload: bool = False
    vae_tiling: bool = False
    vae_tile_size: int = 512  # pixels; 512 tiles keep SD2's 768 decode well under 1 GB
    vae_slicing: bool = False  # decode a batch one image at a time
    attention_slicing: bool = False
    # Low-VRAM: keep only the UNets the running mode needs (an inpaint or depth UNet is
    # freed when another mode runs, and reloaded from disk on its next use).
    unload_idle_unets: bool = False

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def describe(self) -> str:
        """One line for the log and the benchmark table."""
        flags = [name for name in ("sdpa", "channels_last", "fuse_qkv", "compile_unet", "cudnn_benchmark",
                                   "model_cpu_offload", "vae_tiling", "vae_slicing", "attention_slicing",
                                   "unload_idle_unets")
                 if getattr(self, name)]
        return f"{self.device} {self.dtype} " + (",".join(flags) or "stock")


def available_devices() -> tuple[bool, bool]:
    """(cuda, mps) as this torch build and machine see them."""
    import torch

    cuda = torch.cuda.is_available()
    mps_backend = getattr(torch.backends, "mps", None)
    mps = bool(mps_backend and mps_backend.is_available())
    return cuda, mps


def resolve_device(requested: str, *, cuda_available: bool, mps_available: bool) -> str:
    """auto picks cuda, then mps, then cpu. Asking for a device that is absent is an error,
    not a silent fallback to a device a hundred times slower."""
    if requested not in DEVICES:
        raise ValueError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)}")
    if requested == "auto":
        return "cuda" if cuda_available else "mps" if mps_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise ValueError("device cuda was asked for, but torch sees no CUDA GPU")
    if requested == "mps" and not mps_available:
        raise ValueError("device mps was asked for, but torch sees no Apple GPU")
    return requested


def plan_runtime(
    device: str,
    *,
    dtype: str = "auto",
    low_vram: bool = False,
    compile: bool = False,
    bf16_supported: bool = True,
) -> RuntimePlan:
    """The fastest safe settings for a resolved device.

    - CUDA: fp16 (bf16 on request), SDPA, channels_last, fused QKV, cudnn autotuning;
      torch.compile only when asked (minutes of warm-up, then faster steps).
    - MPS: fp16 with attention slicing (MPS's SDPA materialises the attention matrix).
    - CPU: fp32 (CPU half-precision kernels are slow or missing), fused QKV.
    - low_vram (CUDA): model CPU offload and tiled/sliced VAE decode. Attention
      slicing stays off on CUDA: SDPA's kernels never hold the full attention
      matrix, while sliced attention does (per slice) and is slower. Fused QKV is off
      as it keeps a second copy of the projection weights.
      Only the running mode's UNets stay loaded (an inpaint or depth UNet is freed
      when another mode runs).
    """
    if device not in ("cuda", "mps", "cpu"):
        raise ValueError(f"plan_runtime needs a resolved device, got {device!r}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if dtype == "auto":
        dtype = "float32" if device == "cpu" else "float16"
    if dtype == "bfloat16" and not bf16_supported:
        raise ValueError("bfloat16 was asked for, but this GPU has no bf16 support; use float16")

    cuda = device == "cuda"
    plan = RuntimePlan(
        device=device,
        dtype=dtype,
        sdpa=True,
        channels_last=cuda,
        fuse_qkv=device in ("cuda", "cpu"),
        compile_unet=compile and cuda,
        cudnn_benchmark=cuda,
        attention_slicing=device == "mps",
    )
    if low_vram and device != "cpu":
        plan = replace(
            plan,
            unload_idle_unets=True,
            fuse_qkv=False,
            compile_unet=False,  # compiled graphs and offload hooks fight over device moves
            model_cpu_offload=True,
            vae_tiling=True,
            vae_slicing=True,
        )
    return plan


def stock_plan(device: str, dtype: str = "auto") -> RuntimePlan:
    """What plain diffusers does out of the box: the benchmark's baseline."""
    if dtype == "auto":
        dtype = "float32" if device == "cpu" else "float16"
    return RuntimePlan(device=device, dtype=dtype, sdpa=True)
