"""Request and answer bodies of the AUTOMATIC1111 dialect (/sdapi/v1/...), declared once.

Fields as AUTOMATIC1111's API names them; the conventions of server/schemas.py hold
(unknown fields ignored, so the dozens A1111 clients send that the daemon has no use
for, such as `styles`, `restore_faces` or `override_settings`, are accepted; every
optional field also takes null, meaning its default). Where AUTOMATIC1111 bounds
nothing, the bounds are those of the clients that send them (AI-Render's sliders).
Each request turns itself into the options every other door builds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, RootModel, model_validator
from pydantic_core import PydanticCustomError

from ..options import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_N, MAX_SIDE, MIN_SIDE, GenerationOptions
from .schemas import AnswerModel, Count, ErrorBody, PictureBase64, RequestModel, Seed, Steps, Text, Whole

A1111_SIDE = 512  # AUTOMATIC1111's default width and height, for a request that gives only one
A1111_DENOISING = 0.75  # AUTOMATIC1111's default denoising_strength
MAX_CFG = 35.0  # AUTOMATIC1111 sets no bound; AI-Render's slider reaches 35

Side = Annotated[
    int,
    Field(ge=MIN_SIDE, le=MAX_SIDE, description=f"Pixels, {MIN_SIDE} to {MAX_SIDE}; rounded down to a multiple of 8, as AUTOMATIC1111 does."),
    Whole,
    AfterValidator(lambda side: side // 8 * 8),
]
CfgScale = Annotated[float, Field(ge=0, le=MAX_CFG, allow_inf_nan=False, description=f"Guidance, 0 to {MAX_CFG:g}; default {DEFAULT_GUIDANCE}.")]
Name = Annotated[str, Field(max_length=200)]
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
# A1111 clients send 0/1 or false/true for its checkboxes.
Flag = bool | Annotated[int, Field(ge=0, le=1), Whole]
Choice3 = Annotated[int, Field(ge=0, le=3), Whole]


class Txt2ImgRequest(RequestModel):
    """POST /sdapi/v1/txt2img."""

    prompt: Text | None = Field(None, description="What to draw; may be empty, as in AUTOMATIC1111.")
    negative_prompt: Text | None = None
    seed: Seed | None = None
    steps: Steps | None = None
    cfg_scale: CfgScale | None = None
    width: Side | None = None
    height: Side | None = None
    batch_size: Count | None = None
    n_iter: Count | None = Field(None, description=f"Batches; batch_size x n_iter images, at most {MAX_N}.")
    sampler_name: Name | None = Field(
        None, description="An AUTOMATIC1111 sampler (GET /sdapi/v1/samplers; old names such as 'DPM++ 2M Karras' too); unknown: 404."
    )
    sampler_index: Name | None = Field(None, description="The older name of sampler_name; sampler_name wins.")
    scheduler: Name | None = Field(None, description="Schedule type: Automatic or Karras (GET /sdapi/v1/schedulers); others run as Automatic.")
    send_images: bool | None = Field(None, description="false: answer without the images (they stay in the history).")

    @model_validator(mode="after")
    def _at_most_eight(self):
        if (self.batch_size or 1) * (self.n_iter or 1) > MAX_N:
            raise PydanticCustomError("invalid_value", f"batch_size x n_iter may be at most {MAX_N} images.", {"param": "batch_size"})
        return self

    @property
    def sampler(self) -> str | None:
        return self.sampler_name or self.sampler_index or None

    def to_options(self, scheduler: str | None = None) -> GenerationOptions:
        size = None
        if self.width or self.height:
            size = (self.width or A1111_SIDE, self.height or A1111_SIDE)
        return GenerationOptions(
            prompt=self.prompt or "",
            negative_prompt=self.negative_prompt or "",
            size=size,
            n=(self.batch_size or 1) * (self.n_iter or 1),
            steps=self.steps or DEFAULT_STEPS,
            seed=None if self.seed in (None, -1) else self.seed,
            guidance_scale=DEFAULT_GUIDANCE if self.cfg_scale is None else self.cfg_scale,
            scheduler=scheduler,
            response_format="b64_json",
        )


class Img2ImgRequest(Txt2ImgRequest):
    """POST /sdapi/v1/img2img: txt2img's fields over a picture."""

    init_images: list[PictureBase64] = Field(min_length=1, description="The picture to start from (the first is used), base64 raw or a data: URI.")
    denoising_strength: Unit | None = Field(
        None, description=f"How much may change, 0 to 1 (default {A1111_DENOISING}); 0 runs the least the daemon can, one step."
    )
    mask: PictureBase64 | None = Field(None, description="Inpaint: white = repaint (or an alpha mask: opaque = repaint); resized to the picture.")
    mask_blur: Annotated[int, Field(ge=0, le=64), Whole] | None = Field(None, description="Feathering of the seam in pixels; default 4.")
    inpainting_mask_invert: Flag | None = Field(None, description="1: black = repaint.")
    inpainting_fill: Choice3 | None = Field(None, description="Accepted; the daemon starts from the original below strength 1, from noise at 1.")
    inpaint_full_res: Flag | None = Field(None, description="Accepted; the whole picture is always repainted at the output size.")
    resize_mode: Choice3 | None = Field(None, description="0 stretch, 1 crop, 2 fill (3: as 0), when width/height differ from the picture.")
    include_init_images: bool | None = Field(None, description="true: the answer's parameters keep init_images and mask.")


class ExtrasSingleImageRequest(RequestModel):
    """POST /sdapi/v1/extra-single-image: upscale one picture."""

    image: PictureBase64 = Field(description="The picture, base64 raw or a data: URI.")
    resize_mode: Annotated[int, Field(ge=0, le=1), Whole] | None = Field(
        None, description="0: scale by upscaling_resize; 1: to upscaling_resize_w x upscaling_resize_h."
    )
    upscaling_resize: Annotated[float, Field(gt=0, le=8, allow_inf_nan=False)] | None = Field(None, description="Scale factor; default 2.")
    upscaling_resize_w: Annotated[int, Field(ge=1, le=8192), Whole] | None = Field(None, description="Target width; default 512.")
    upscaling_resize_h: Annotated[int, Field(ge=1, le=8192), Whole] | None = Field(None, description="Target height; default 512.")
    upscaling_crop: bool | None = Field(None, description="With resize_mode 1: crop to the target's aspect (default true).")
    upscaler_1: Name | None = Field(None, description="Lanczos, Nearest or None (GET /sdapi/v1/upscalers); default None.")


class OptionsUpdate(RequestModel):
    """POST /sdapi/v1/options: settings the daemon does not change are accepted and ignored."""

    sd_model_checkpoint: Name | None = Field(None, description="Must name the loaded model: the daemon does not switch models.")


class ProgressQuery(RequestModel):
    """GET /sdapi/v1/progress."""

    skip_current_image: bool | None = None


# ---- answers ------------------------------------------------------------------


class A1111ErrorResponse(AnswerModel):
    """Every error on /sdapi/: the contract's error object, and AUTOMATIC1111's detail."""

    error: ErrorBody
    detail: str


class A1111Images(AnswerModel):
    images: list[str] = Field(description="PNGs as raw base64, each with its parameters chunk.")
    parameters: dict[str, Any]
    info: str = Field(description="JSON: seed, all_seeds, prompt, all_prompts, infotexts, ...")


class ExtrasImage(AnswerModel):
    image: str = Field(description="The PNG as raw base64.")
    html_info: str


class SamplerItem(AnswerModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(AnswerModel):
    name: str
    label: str
    aliases: list[str] | None
    default_rho: float | None
    need_inner_model: bool | None


class SDModelItem(AnswerModel):
    title: str
    model_name: str
    hash: str | None
    sha256: str | None
    filename: str
    config: str | None


class UpscalerItem(AnswerModel):
    name: str
    model_name: str | None
    model_path: str | None
    model_url: str | None
    scale: float | None


class ScriptsList(AnswerModel):
    txt2img: list[str]
    img2img: list[str]


class ProgressAnswer(AnswerModel):
    progress: float = Field(ge=0, le=1)
    eta_relative: float
    state: dict[str, Any]
    current_image: str | None
    textinfo: str | None


class Samplers(RootModel[list[SamplerItem]]):
    pass


class Schedulers(RootModel[list[SchedulerItem]]):
    pass


class SDModels(RootModel[list[SDModelItem]]):
    pass


class Upscalers(RootModel[list[UpscalerItem]]):
    pass
