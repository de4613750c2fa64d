"""How much work one generation may ask for, by the device that runs it.

The contract's bounds (sides to 2048, n to 8, steps to 500) let one request ask for
2048x2048 x 8 x 500. Cancel and shutdown are checked between denoising steps, so what
matters to a waiting user is the cost of one step, width x height x n pixels, and the
cost of the whole job, that times the steps. Each device kind gets a budget for both;
a request beyond either is 400 `too_large`, with the budget in the message. The same
budget is stated in /openapi.json (openapi_extension, describe_operation).

Measured with the tiny preset on 2 CPU cores (a step costs more than linearly in the
pixels, attention being quadratic): 512x512 2.1 s, 768x768 6.1 s, 768x768 x 2 11.2 s,
1024x1024 21 s, 2048x2048 x 8 minutes. The real SD2 UNet is slower still.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ApiError


@dataclass(frozen=True)
class WorkBudget:
    device: str  # the device kind the figures are for: cpu, mps, cuda
    max_pixels_per_step: int  # width x height x n: bounds how long cancel and shutdown wait
    max_pixel_steps: int  # width x height x n x steps: bounds how long one job runs


MEGA = 1_000_000

# cpu: one 1024x1024 (or SD2's native 768x768, or four 512x512) per step, 50 such steps.
# mps: twice that per step. cuda (and any other accelerator a backend reports): the
# contract's largest picture, 2048x2048, per step, and 100 such steps.
BUDGETS = {
    "cpu": WorkBudget("cpu", 1024 * 1024, 1024 * 1024 * 50),
    "mps": WorkBudget("mps", 2 * 1024 * 1024, 2 * 1024 * 1024 * 50),
    "cuda": WorkBudget("cuda", 2048 * 2048, 2048 * 2048 * 100),
}


def budget_for(device: str, override: tuple[int, int] | None = None) -> WorkBudget:
    """The budget for a device as engines report it ("cpu", "cuda", "cuda:1", "mps")."""
    kind = (device or "").split(":", 1)[0].lower()
    kind = kind if kind in BUDGETS else "cuda"
    if override is not None:
        return WorkBudget(kind, int(override[0]), int(override[1]))
    return BUDGETS[kind]


def megapixels(pixels: int) -> str:
    return f"{pixels / MEGA:.2f}".rstrip("0").rstrip(".")


def _largest_square(pixels: int) -> str:
    side = int(pixels**0.5) // 8 * 8
    return f"{side}x{side}"


def describe(budget: WorkBudget) -> str:
    return (
        f"On {budget.device} one request may ask for at most {megapixels(budget.max_pixels_per_step)} megapixels per denoising step "
        f"(width x height x n) and {megapixels(budget.max_pixel_steps)} megapixel-steps in all (width x height x n x steps), "
        "so that cancel and shutdown answer within one step; beyond is 400 too_large."
    )


def check_work(budget: WorkBudget, width: int, height: int, n: int, steps: int) -> None:
    """Raise 400 too_large if one request asks for more than the device's budget."""
    per_step = width * height * n
    asked = f"{width}x{height} x {n} image{'s' if n != 1 else ''}"
    if per_step > budget.max_pixels_per_step:
        raise ApiError(
            400,
            f"{asked} is {megapixels(per_step)} megapixels per denoising step; on {budget.device} the daemon takes at most "
            f"{megapixels(budget.max_pixels_per_step)} (width x height x n: one {_largest_square(budget.max_pixels_per_step)}, or four "
            f"{_largest_square(budget.max_pixels_per_step // 4)}), so that cancel answers within a step. Ask for a smaller size or fewer images.",
            "too_large",
            param="n" if n > 1 and width * height <= budget.max_pixels_per_step else "size",
        )
    if per_step * steps > budget.max_pixel_steps:
        most = max(1, budget.max_pixel_steps // per_step)
        raise ApiError(
            400,
            f"{asked} x {steps} steps is {megapixels(per_step * steps)} megapixel-steps; on {budget.device} the daemon takes at most "
            f"{megapixels(budget.max_pixel_steps)} (width x height x n x steps): at this size and n, at most {most} steps.",
            "too_large",
            param="steps",
        )


def openapi_extension(budget: WorkBudget | None) -> dict:
    """x-voicebrush-work-budget for the generating operations: this device's budget, or
    (before the models have loaded) every device's."""
    def one(b: WorkBudget) -> dict:
        return {"max_pixels_per_step": b.max_pixels_per_step, "max_pixel_steps": b.max_pixel_steps}

    if budget is not None:
        return {"device": budget.device, **one(budget), "error": "too_large"}
    return {"by_device": {kind: one(b) for kind, b in BUDGETS.items()}, "error": "too_large"}


def describe_operation(operation: dict, budget: WorkBudget | None) -> dict:
    """An OpenAPI operation (a dict) with the budget added to its description and as
    x-voicebrush-work-budget. For any builder of the document; returns the operation."""
    sentence = describe(budget) if budget is not None else (
        "The work one request may ask for is bounded by the device (x-voicebrush-work-budget: width x height x n per step, "
        "times steps in all); beyond is 400 too_large."
    )
    operation["description"] = f"{operation.get('description', '').rstrip()} {sentence}".strip()
    operation["x-voicebrush-work-budget"] = openapi_extension(budget)
    return operation
