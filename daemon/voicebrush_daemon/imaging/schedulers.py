"""The schedulers the daemon offers: one table, read by the engine, the PNG metadata and
the AUTOMATIC1111 routes.

Each entry says which diffusers scheduler runs it (built from the model's own scheduler
config, so v-prediction and the betas carry over) and what AUTOMATIC1111 calls it: its
sampler name and schedule type, as AUTOMATIC1111 1.9+ splits them ("DPM++ 2M" +
"Karras"; older clients send "DPM++ 2M Karras" as one name). The pairing follows
diffusers' own table of A1111 equivalents. Pure data: importing it loads no model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AUTOMATIC, KARRAS = "Automatic", "Karras"  # AUTOMATIC1111's schedule types the daemon has
# Every schedule type AUTOMATIC1111 knows, to read an old-style "Sampler Type" name.
A1111_SCHEDULE_TYPES = (
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform",
    "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Beta",
)


@dataclass(frozen=True)
class Scheduler:
    name: str  # what requests, records and /openapi.json call it
    diffusers_class: str
    options: dict = field(default_factory=dict)  # on top of the model's own scheduler config
    a1111_sampler: str = ""  # AUTOMATIC1111's sampler name
    a1111_schedule: str = AUTOMATIC  # AUTOMATIC1111's schedule type
    a1111_aliases: tuple[str, ...] = ()  # k-diffusion names AUTOMATIC1111 also accepts


_KARRAS = {"use_karras_sigmas": True}
_DPMPP = {"algorithm_type": "dpmsolver++", "solver_order": 2}
_DPMPP_SDE = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}

CATALOGUE: tuple[Scheduler, ...] = (
    Scheduler("dpmpp_2m", "DPMSolverMultistepScheduler", _DPMPP, "DPM++ 2M", a1111_aliases=("k_dpmpp_2m",)),
    Scheduler("dpmpp_2m_karras", "DPMSolverMultistepScheduler", {**_DPMPP, **_KARRAS}, "DPM++ 2M", KARRAS),
    Scheduler("dpmpp_2m_sde", "DPMSolverMultistepScheduler", _DPMPP_SDE, "DPM++ 2M SDE", a1111_aliases=("k_dpmpp_2m_sde",)),
    Scheduler("dpmpp_2m_sde_karras", "DPMSolverMultistepScheduler", {**_DPMPP_SDE, **_KARRAS}, "DPM++ 2M SDE", KARRAS),
    Scheduler("dpmpp_sde", "DPMSolverSDEScheduler", {}, "DPM++ SDE", a1111_aliases=("k_dpmpp_sde",)),
    Scheduler("dpmpp_sde_karras", "DPMSolverSDEScheduler", _KARRAS, "DPM++ SDE", KARRAS),
    Scheduler("ddim", "DDIMScheduler", {}, "DDIM"),
    Scheduler("plms", "PNDMScheduler", {"skip_prk_steps": True}, "PLMS"),
    Scheduler("euler", "EulerDiscreteScheduler", {}, "Euler", a1111_aliases=("k_euler",)),
    Scheduler("euler_karras", "EulerDiscreteScheduler", _KARRAS, "Euler", KARRAS),
    Scheduler("euler_a", "EulerAncestralDiscreteScheduler", {}, "Euler a", a1111_aliases=("k_euler_a", "k_euler_ancestral")),
    Scheduler("heun", "HeunDiscreteScheduler", {}, "Heun", a1111_aliases=("k_heun",)),
    Scheduler("heun_karras", "HeunDiscreteScheduler", _KARRAS, "Heun", KARRAS),
    Scheduler("lms", "LMSDiscreteScheduler", {}, "LMS", a1111_aliases=("k_lms",)),
    Scheduler("lms_karras", "LMSDiscreteScheduler", _KARRAS, "LMS", KARRAS),
    Scheduler("dpm2", "KDPM2DiscreteScheduler", {}, "DPM2", a1111_aliases=("k_dpm_2",)),
    Scheduler("dpm2_karras", "KDPM2DiscreteScheduler", _KARRAS, "DPM2", KARRAS),
    Scheduler("dpm2_a", "KDPM2AncestralDiscreteScheduler", {}, "DPM2 a", a1111_aliases=("k_dpm_2_a",)),
    Scheduler("dpm2_a_karras", "KDPM2AncestralDiscreteScheduler", _KARRAS, "DPM2 a", KARRAS),
    Scheduler("unipc", "UniPCMultistepScheduler", {}, "UniPC"),
)

SCHEDULERS: dict[str, Scheduler] = {scheduler.name: scheduler for scheduler in CATALOGUE}
DEFAULT_SCHEDULER = "dpmpp_2m"


def a1111_label(name: str) -> tuple[str, str]:
    """(sampler, schedule type) AUTOMATIC1111 writes for one of our scheduler names; an
    unknown name is its own sampler name."""
    scheduler = SCHEDULERS.get(name)
    if scheduler is None:
        return name, AUTOMATIC
    return scheduler.a1111_sampler, scheduler.a1111_schedule


def a1111_samplers() -> dict[str, tuple[str, ...]]:
    """AUTOMATIC1111 sampler name -> its aliases, in the catalogue's order, each once."""
    samplers: dict[str, tuple[str, ...]] = {}
    for scheduler in CATALOGUE:
        samplers[scheduler.a1111_sampler] = samplers.get(scheduler.a1111_sampler, ()) + scheduler.a1111_aliases
    return samplers


def for_a1111(sampler: str, schedule: str | None = None) -> str | None:
    """Our scheduler for an AUTOMATIC1111 sampler (its name, an alias or our own name, any
    case) and schedule type. An old-style name carries its type ("DPM++ 2M Karras"), as
    AUTOMATIC1111 reads it; a type this sampler lacks here falls back to its automatic
    one, as AUTOMATIC1111 falls back on a type it does not know. None: no such sampler."""
    wanted = sampler.strip().lower()
    schedule = (schedule or AUTOMATIC).strip().lower()
    for label in A1111_SCHEDULE_TYPES:
        if wanted.endswith(" " + label.lower()):
            wanted, schedule = wanted[: -len(label) - 1].rstrip(), label.lower()
            break
    matches = [s for s in CATALOGUE if wanted in (s.a1111_sampler.lower(), *s.a1111_aliases, s.name)]
    if not matches:
        return None
    for scheduler in matches:
        if scheduler.a1111_schedule.lower() == schedule or scheduler.name == wanted:
            return scheduler.name
    return next((s.name for s in matches if s.a1111_schedule == AUTOMATIC), matches[0].name)
