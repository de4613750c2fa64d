"""The roll: where each replica says who it is, where it runs and what it has loaded.

Ray Serve tells the front door which replicas run and on which node, but not what a
replica holds (a picture mode's UNet loads on its first use) nor how its last cancel
went. Each replica reports that here, fire and forget, when it starts and after each
job; health reads it back, keeping only the replicas Serve still runs.

One small named actor (no CPU of its own), detached so that a restarted front door finds
what the running replicas already said.
"""

from __future__ import annotations

from typing import Any

from .replicas import ROLL_NAME, ROLL_NAMESPACE


class ReplicaRoll:
    def __init__(self) -> None:
        self._replicas: dict[str, dict[str, Any]] = {}

    def report(self, replica: str, state: dict[str, Any]) -> None:
        self._replicas[replica] = state

    def read(self) -> dict[str, dict[str, Any]]:
        return dict(self._replicas)

    def forget(self, keep: list[str]) -> None:
        """Drop the replicas Serve no longer runs."""
        self._replicas = {replica: state for replica, state in self._replicas.items() if replica in keep}


def open_roll(node_id: str | None = None):
    """The roll's actor handle, started on `node_id` (the front door's node) if it is not
    running yet."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    options: dict[str, Any] = dict(name=ROLL_NAME, namespace=ROLL_NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0)
    if node_id is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
    return ray.remote(ReplicaRoll).options(**options).remote()
