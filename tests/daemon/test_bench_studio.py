"""`voicebrush bench --ray` (contract: "Studio scale"): every key, in quick mode, on the
session's studio cluster (the bench otherwise starts a cluster of its own).

No timing thresholds: the figures go in docs/benchmarks.md. What is asserted is what
does not depend on this machine's speed: the keys, and that no job was lost.
"""

from __future__ import annotations

import json
import math

import pytest

from voicebrush_daemon.bench import QUICK_ENV


@pytest.fixture(scope="module")
def report(studio, tiny_settings, tmp_path_factory):
    from voicebrush_daemon.bench.studio import run_studio_bench

    out = tmp_path_factory.mktemp("bench-ray") / "studio.json"
    patch = pytest.MonkeyPatch()
    patch.setenv(QUICK_ENV, "1")
    try:
        assert run_studio_bench(tiny_settings, rounds=1, json_path=out, studio=studio) == 0
    finally:
        patch.undo()
    return json.loads(out.read_text())


def test_every_studio_key_with_sane_values(report):
    from voicebrush_daemon.bench.studio import KEYS

    for key in KEYS:
        value = report[key]
        assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    for key in ("ray_throughput_1_replica_jobs_per_s", "ray_throughput_2_replicas_jobs_per_s", "ray_scaling_2_vs_1", "ray_queue_wait_p95_s", "ray_front_door_idle_rss_mb"):
        assert report[key] > 0, (key, report[key])
    assert report["ray_queue_wait_p50_s"] <= report["ray_queue_wait_p95_s"]
    # The overhead is a difference of two medians: it may come out a hair below zero.
    dispatch = report["dispatch"]
    assert report["ray_dispatch_overhead_s"] == pytest.approx(dispatch["ray_median_s"] - dispatch["in_process_median_s"], abs=1e-3)
    assert report["config"]["quick"] is True


def test_no_job_is_lost_when_a_node_is_killed(report, studio):
    kill = report["stand_in"]["node_kill"]
    assert report["ray_jobs_lost_after_node_kill"] == kill["lost"] == 0
    assert kill["jobs"] == report["config"]["node_kill_jobs"]
    assert len(studio.gpu_nodes) == 2  # the bench gave the session's cluster its node back


def test_the_table_names_each_figure(report):
    from voicebrush_daemon.bench.studio import format_studio_table

    table = format_studio_table(report)
    for row in ("ray dispatch overhead per job", "throughput, 1 image replica", "throughput, 2 image replicas", "queue wait p50 / p95", "jobs lost after a node kill", "front door idle memory"):
        assert row in table
    assert f"{report['config']['clients']} clients" in table
