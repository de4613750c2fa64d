"""The roll: where each replica says who it is, where it runs and what it has loaded.

Ray Serve tells the front door which replicas run and on which node, but not what a
replica holds (a picture mode's UNet loads on its first use) nor how its last cancel
went. Each replica reports that here, fire and forget, when it starts and after each
job; health reads it back, keeping only the replicas Serve still runs.

One small named actor on the head node (no CPU of its own), detached so that a
restarted front door finds what the running replicas already said.
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


def open_roll():
    """The roll's actor handle, started on the head node if it is not running yet: the
    head outlives the GPU boxes (when it goes, so does the cluster), and a roll that
    dies anyway comes back empty (the replicas fill it again after their next job)."""
    import ray

    return ray.remote(ReplicaRoll).options(
        name=ROLL_NAME, namespace=ROLL_NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, resources={"node:__internal_head__": 0.001},
    ).remote()


def read_roll() -> dict[str, dict[str, Any]]:
    """What the replicas said, without starting a roll where none runs."""
    import ray

    try:
        return ray.get(ray.get_actor(ROLL_NAME, namespace=ROLL_NAMESPACE).read.remote(), timeout=10)
    except Exception:  # no roll yet (nothing deployed), or it is restarting
        return {}
