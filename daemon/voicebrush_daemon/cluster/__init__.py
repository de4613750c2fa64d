"""Studio scale: the daemon as the front door of a Ray Serve cluster (`serve --ray`).

- `replicas`: the deployments, plain classes around the same engines (ImageReplica, SpeechReplica);
- `roll`: where replicas report what they run and have loaded, for health;
- `health`: what the cluster runs (health's `cluster` section) and its lines for a person;
- `backend`: RayBackend, the job queue's backend that hands generations to the replicas;
- `local`: a studio cluster on one machine (the tests, `voicebrush bench --ray`).

Imported only when --ray is given: without it no Ray module is loaded.
"""

from .backend import ClusterUnreachable, RayBackend, connect, parse_replicas

__all__ = ["ClusterUnreachable", "RayBackend", "connect", "parse_replicas"]
