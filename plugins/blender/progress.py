"""What is going on right now (generations, the recording), for the panel and the Cancel button. No bpy."""


class RecordingState(object):
    def __init__(self):
        self.active = False
        self.transcribing = False
        self.seconds = 0.0
        self.level = 0.0
        self.stop_requested = False
        self.partial = ("", "")  # a streamed take's words so far: (text, the stable prefix of it)
        self.operator = None  # the modal operator recording now


recording = RecordingState()


def live_words(text, stable):
    """(settled words, the tail that may still change) of a streamed take's partial transcript."""
    text, stable = (text or "").strip(), (stable or "").strip()
    if stable and text.startswith(stable):
        return stable, text[len(stable):].strip()
    return "", text

# (GenerationJob, the modal operator following it), oldest first.
_running = []
_last_job = None


def started(job, operator=None):
    global _last_job
    _running.append((job, operator))
    _last_job = job


def ended(job):
    _running[:] = [entry for entry in _running if entry[0] is not job]


def running():
    """[(job, operator)] of the generations still followed by a modal operator."""
    return list(_running)


def current_job():
    """The newest generation, running or just ended, or None."""
    return _last_job


def cancel_all():
    for job, _ in _running:
        job.cancel()
    return len(_running)


def reset():
    """Forget everything (add-on unregistered)."""
    global _last_job
    _running[:] = []
    _last_job = None
    recording.__init__()
