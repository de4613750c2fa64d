"""What the add-on last learned about the daemon, for the panel and the preferences. No bpy."""

from .voicebrush_client import Client, VoicebrushError

# Short: the Test Connection button blocks the UI while it waits.
HEALTH_TIMEOUT_S = 3.0


class DaemonStatus(object):
    """The outcome of the last contact with the daemon."""

    def __init__(self, checked=False, ok=False, line="Not connected yet", server=""):
        self.checked = checked
        self.ok = ok
        self.line = line
        self.server = server


daemon = DaemonStatus()


def check(server, token=""):
    """Ask the daemon for its health and remember the answer; returns the new DaemonStatus."""
    global daemon
    try:
        client = Client(server or None, token, timeout=HEALTH_TIMEOUT_S)
        health = client.health()
        # /v1/health is open without a token; a cheap authenticated call checks the token too.
        client.list_jobs(limit=1)
    except VoicebrushError as exc:
        daemon = DaemonStatus(True, False, str(exc), server)
        return daemon
    if health.get("status") != "ok":
        daemon = DaemonStatus(True, False, "The daemon at %s is still loading its models." % client.server, server)
        return daemon
    models = health.get("models") or {}
    described = ", ".join(str(models[key]) for key in ("image", "speech") if models.get(key))
    daemon = DaemonStatus(True, True, "Connected to %s (%s on %s)" % (
        client.server, described or "models ready", health.get("device") or "?"), server)
    return daemon


def remember(ok, line, server=""):
    """Record what a generation learned about the connection."""
    global daemon
    daemon = DaemonStatus(True, ok, line, server)
