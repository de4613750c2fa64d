"""The speech tests again, in fresh interpreters, on other CPUs' numeric code paths.

tiny.en's words on a marginal clip change with how the CPU rounds: on an Intel Xeon
the 10 s window heard alley.flac as "Rely on that night without people", where this
suite's AMD EPYC had heard "rainy". CTranslate2 multiplies its int8 matrices with
Intel MKL on Intel CPUs and with oneDNN on all others, and runs its own kernels in
the widest instruction set it finds; openai-whisper's torch calls MKL. Each library
reads an environment variable at start-up that forces another path, so one machine
can run the code paths of others: a speech assertion that holds only on one of them
fails here, not on the next CI machine.

The settings were chosen from a sweep of all of them (MKL_CBWR=AVX2|COMPATIBLE|AVX512,
CT2_FORCE_CPU_ISA=GENERIC|AVX|AVX2|AVX512, CT2_USE_MKL, ONEDNN_MAX_CPU_ISA=AVX2|SSE41,
ATEN_CPU_CAPABILITY=default): together these three gave every distinct transcript
the sweep found that changed a word (docs/benchmarks.md, "Speech on other CPUs").
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

import pytest

from voicebrush_testing import ROOT

# The tests that assert on transcripts, with everything about them that the numeric
# path cannot change (the VAD runs before any engine; option and error checks)
# left out. test_speech_heard_elsewhere.py stands in for the daemon, plugin and
# host tests.
SPEECH_TESTS = [
    "tests/daemon/test_speech_engines.py",
    "tests/daemon/test_speech_window.py",
    "tests/daemon/test_speech_heard_elsewhere.py",
]
NOT_NUMERIC = "not no_speech and not bad_options and not identify and not cli_flag and not token_cap and not nine_seconds and not loops_and_stutters"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            return set(next(line for line in info if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return set()


def numeric_paths() -> dict[str, tuple[dict[str, str], bool]]:
    """name: (the environment that forces it, whether it reaches openai-whisper's torch too)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return {"generic": ({"CT2_FORCE_CPU_ISA": "GENERIC"}, False)}
    widest = "AVX512" if "avx512f" in cpu_flags() else "AVX2" if "avx2" in cpu_flags() else "AVX"
    return {
        # An Intel CPU's path: MKL for CTranslate2 (its default on Intel) in the widest
        # instructions this CPU has, as a Xeon runs it. MKL_CBWR moves torch's MKL too.
        "intel-mkl": ({"CT2_USE_MKL": "1", "CT2_FORCE_CPU_ISA": widest, "MKL_CBWR": "AVX2"}, True),
        # Every other CPU's path: oneDNN, held to SSE4.1 (an older or smaller x86).
        "onednn-sse41": ({"CT2_USE_MKL": "0", "ONEDNN_MAX_CPU_ISA": "SSE41"}, False),
        # No vector kernels in CTranslate2 at all, MKL's bit-reproducible branch.
        "generic": ({"CT2_FORCE_CPU_ISA": "GENERIC", "MKL_CBWR": "COMPATIBLE"}, False),
    }


@pytest.mark.parametrize("path", sorted(numeric_paths()))
def test_speech_tests_hold_on_another_cpus_numerics(path, tmp_path):
    forced, reaches_torch = numeric_paths()[path]
    # CTranslate2's settings leave openai-whisper's numbers as they were: its tests
    # run again only where MKL is forced too.
    selected = NOT_NUMERIC if reaches_torch else f"{NOT_NUMERIC} and not openai and not both_engines"
    env = {**os.environ, **forced, "CT2_VERBOSE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [
        sys.executable, "-m", "pytest", *SPEECH_TESTS, "-q", "-p", "no:cacheprovider", "--capture=sys",
        "-k", selected,
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = f"{' '.join(f'{k}={v}' for k, v in forced.items())}\n{result.stdout[-6000:]}"
    assert result.returncode == 0, report
    # The forced path was the one taken (CTranslate2 says so when it loads a model).
    if "CT2_FORCE_CPU_ISA" in forced:
        assert f"Selected ISA: {forced['CT2_FORCE_CPU_ISA']}" in result.stderr, result.stderr[-2000:]
    if "CT2_USE_MKL" in forced:
        assert f"Use Intel MKL: {'true' if forced['CT2_USE_MKL'] == '1' else 'false'}" in result.stderr, result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout), report
