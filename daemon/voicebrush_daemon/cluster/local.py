"""A studio cluster on one machine, for the tests and `voicebrush bench --ray`.

ray.cluster_utils.Cluster starts real Ray nodes (raylets) on this machine: a head with
CPUs only (the front door's node, where the speech replica goes) and two nodes with one
logical GPU each, which is all the image deployment asks for (no GPU is needed for a
logical one; each replica is given CUDA_VISIBLE_DEVICES and torch then sees no CUDA here).
The calling process is the cluster's driver, as `serve --ray` is on a real cluster.

A test that removes a GPU node puts one back (`restore`), so the next test finds two
replicas again. The tests start it once per session (tests/conftest.py `studio`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

GPU_NODES = 2


@dataclass
class StudioCluster:
    cluster: object  # ray.cluster_utils.Cluster
    gpu_nodes: list = field(default_factory=list)
    models_root: Path | None = None

    @property
    def address(self) -> str:
        return self.cluster.address

    def settings(self, base, **overrides):
        """Settings of a front door on this cluster: two image replicas, the tiny preset,
        the replicas' models in the session's models dir (built once)."""
        values = dict(ray_address=self.address, replicas=(GPU_NODES, GPU_NODES), replica_gpus=1.0, replica_data_dir=self.models_root)
        values.update(overrides)
        return replace(base, **values)

    def add_gpu_node(self):
        # Two logical CPUs: the image replica takes one, and the other is free for what
        # Serve places anywhere (a speech replica), which must not starve it of its CPU.
        node = self.cluster.add_node(num_cpus=2, num_gpus=1)
        self.gpu_nodes.append(node)
        return node

    def node_of(self, worker: str):
        """The GPU node a replica (a job's `worker`, "IP/replica") runs on."""
        from ray.serve.context import _get_global_client

        replica_id = worker.rsplit("/", 1)[-1]
        details = _get_global_client().get_serve_details()
        for replica in details["applications"]["voicebrush"]["deployments"]["voicebrush-image"]["replicas"]:
            if replica["replica_id"] == replica_id:
                return next(node for node in self.gpu_nodes if node.node_id == replica["node_id"])
        raise AssertionError(f"no running replica {worker}")

    def remove(self, node) -> None:
        """Kill a GPU node at once, as a box that loses power."""
        self.gpu_nodes.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)

    def restore(self, timeout: float = 180.0) -> None:
        """Back to two GPU nodes, each with a running image replica."""
        while len(self.gpu_nodes) < GPU_NODES:
            self.add_gpu_node()
        self.wait_running(GPU_NODES, timeout)

    def wait_running(self, replicas: int, timeout: float = 180.0) -> None:
        from ray import serve

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app = serve.status().applications.get("voicebrush")
            if app is not None and app.status == "RUNNING":
                image = app.deployments["voicebrush-image"]
                if image.replica_states.get("RUNNING", 0) >= replicas and image.status == "HEALTHY":
                    return
            time.sleep(0.5)
        raise AssertionError(f"the image replicas did not come back: {serve.status()}")


def start_cluster(models_root: Path) -> StudioCluster:
    import ray
    from ray.cluster_utils import Cluster

    # The head: the front door's node. Two CPUs: the speech replicas run here.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0, "include_dashboard": False})
    studio = StudioCluster(cluster, models_root=models_root)
    for _ in range(GPU_NODES):
        studio.add_gpu_node()
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="voicebrush", log_to_driver=False, logging_level="WARNING")
    return studio


def stop_cluster(studio: StudioCluster) -> None:
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()
        studio.cluster.shutdown()
