"""`voicebrush bench`'s streaming figures: the keys and sane values, on the tiny preset.

No timing thresholds (a shared, noisy machine); only what must hold whatever the speed:
every key is there, streamed finals equal the one-shot transcripts, the partials were seen.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from voicebrush_daemon.bench import streaming as bench_streaming

KEYS = (
    "release_to_transcript_s", "release_to_transcript_upload_s", "e2e_dictation_streaming_s", "e2e_dictation_upload_s",
    "partial_cpu_per_audio_s", "stream_transport_cpu_per_audio_s", "partial_cadence_s", "partial_lag_s",
    "partials_per_audio_s", "streaming_final_match_rate", "generation_slowdown_with_partials",
)


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(tiny_engines, tiny_settings, tmp_path_factory):
    settings = replace(tiny_settings, data_dir=tmp_path_factory.mktemp("bench-streaming") / "data")
    return bench_streaming.run(settings, tiny_engines, quick=True)


def test_every_streaming_key_with_sane_values(report):
    for key in KEYS:
        assert key in report, key
    for key in ("release_to_transcript_s", "release_to_transcript_upload_s", "e2e_dictation_streaming_s", "e2e_dictation_upload_s",
                "partial_cpu_per_audio_s", "stream_transport_cpu_per_audio_s", "generation_slowdown_with_partials"):
        assert positive(report[key]), (key, report[key])
    assert report["streaming_final_match_rate"] == 1.0
    detail = report["streaming"]
    run = detail["runs"][0]
    assert run["streaming"]["transcript"] == run["upload"]["transcript"]  # the same samples, the same words
    assert run["streaming"]["transcript_s"] <= run["streaming"]["done_s"]
    assert run["upload"]["transcript_s"] <= run["upload"]["done_s"]
    assert run["streaming"]["server"]["partial_decodes"] >= 1
    assert detail["silent_take"]["partials"] == 0 and detail["silent_take"]["transcript"] == ""
    gen = detail["generation"]
    assert len(gen["alone_s"]) == len(gen["beside_a_take_s"]) == 1


def test_the_rows_for_bench_table(report):
    rows = bench_streaming.format_rows(report)
    assert [row[0] for row in rows][:2] == ["release to transcript, streaming", "dictation end to end, streaming"]
    assert all(len(" ".join(row)) < 200 for row in rows)
