"""What the studio cluster runs, as health's `cluster` section and as lines for a person.

    snapshot = read_cluster(roll_state)    # Serve's replicas and nodes, with what each said
    lines = describe_cluster(snapshot)     # what `serve --ray` and `models --ray` print

Serve knows which replicas run and where; the roll (roll.py) adds what each has loaded,
its jobs and its last cancel. `describe_cluster` imports nothing from Ray.
"""

from __future__ import annotations

from typing import Any

APP = "voicebrush"


def read_cluster(roll: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The cluster now: nodes, GPUs, and each deployment of the app with its replicas.
    `roll`: what the replicas reported, by replica id (may be empty)."""
    import ray
    from ray.serve.context import _get_global_client

    # What `serve status` and the dashboard read: each replica with its node.
    details = _get_global_client().get_serve_details()
    app = details.get("applications", {}).get(APP, {})
    deployments: dict[str, Any] = {}
    for name, deployment in app.get("deployments", {}).items():
        replicas = []
        for replica in deployment.get("replicas", []):
            reported = roll.get(replica["replica_id"], {})
            replicas.append({
                "replica": replica["replica_id"],
                "state": str(getattr(replica["state"], "value", replica["state"])),
                "worker": reported.get("worker") or f"{replica.get('node_ip')}/{replica['replica_id']}",
                "node_id": replica.get("node_id"),
                "node_ip": replica.get("node_ip"),
                "gpus": reported.get("gpus", []),
                "device": reported.get("device"),
                "loaded": reported.get("loaded"),
                "jobs": reported.get("jobs", 0),
                "last_cancel": reported.get("last_cancel"),
            })
        config = deployment.get("deployment_config", {})
        scaling = config.get("autoscaling_config") or {}
        deployments[name] = {
            "status": str(getattr(deployment.get("status"), "value", deployment.get("status"))),
            "replicas": replicas,
            "running": sum(1 for r in replicas if r["state"] == "RUNNING"),
            "min_replicas": scaling.get("min_replicas", config.get("num_replicas")),
            "max_replicas": scaling.get("max_replicas", config.get("num_replicas")),
            "gpus_per_replica": (config.get("ray_actor_options") or {}).get("num_gpus", 0),
        }
    live_nodes = [node for node in ray.nodes() if node.get("Alive")]
    return {
        "backend": "ray",
        "app": APP,
        "nodes": [{"node_id": n["NodeID"], "node_ip": n.get("NodeManagerAddress"), "gpus": n.get("Resources", {}).get("GPU", 0)} for n in live_nodes],
        "gpus": sum(n.get("Resources", {}).get("GPU", 0) for n in live_nodes),
        "deployments": deployments,
    }


def describe_cluster(cluster: dict | None) -> list[str]:
    """The snapshot as lines: the nodes' GPUs, and where each deployment's replicas run
    with what they have loaded."""
    if not cluster:
        return ["ray: the cluster's state is not known yet"]
    lines = [f"ray: {len(cluster['nodes'])} nodes, {cluster['gpus']:g} GPUs; application {cluster['app']!r}"]
    if not cluster["deployments"]:
        lines.append(f"ray: the application {cluster['app']!r} is not deployed (`voicebrush serve --ray` deploys it)")
    for name, deployment in cluster["deployments"].items():
        lines.append(f"ray: {name}: {deployment['running']} of {deployment['min_replicas']}-{deployment['max_replicas']} replicas running, {deployment['gpus_per_replica']:g} GPU each")
        for replica in deployment["replicas"]:
            gpus = ",".join(replica["gpus"]) or "none"
            loaded = ", ".join((replica.get("loaded") or {}).values()) or "-"
            lines.append(f"ray:   {replica['worker']} ({replica['state']}) node {(replica['node_id'] or '?')[:12]}, GPU {gpus}, loaded: {loaded}")
    return lines
