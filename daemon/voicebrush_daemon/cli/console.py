"""What a user sees from the command line: our lines, not the libraries' chatter.

Results go to stdout; what happens on the way (heard, progress, notes) and errors go
to stderr, one `voicebrush: ...` line each.
"""

from __future__ import annotations

import os
import sys

# A library's progress bar appears only when what it tracks takes longer than this:
# a real download or a long load gets its bar, a 0.1 s load of the tiny model none.
LONG_WORK_S = 2.0


class CommandFailed(Exception):
    """Ends a command with one line on stderr and an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def quiet_libraries(verbose: bool = False) -> None:
    """Keep transformers' and diffusers' warnings (e.g. "SiglipImageProcessor requires
    torchvision", nothing to do with voicebrush) and their quick progress bars away from
    the user. Runs before either library is imported; a user's own *_VERBOSITY wins."""
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    show_bars_only_for_long_work()


def show_bars_only_for_long_work(delay_s: float = LONG_WORK_S) -> None:
    # transformers, diffusers and huggingface_hub all draw through tqdm.auto.tqdm, looked up
    # when a bar is made; tqdm's own `delay` shows a bar only once that much time has passed.
    import tqdm.auto

    base = tqdm.auto.tqdm
    if getattr(base, "voicebrush_delay", None) is not None:
        return

    class DelayedBar(base):
        voicebrush_delay = delay_s

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("delay", delay_s)
            super().__init__(*args, **kwargs)

    tqdm.auto.tqdm = DelayedBar


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def error_line(message: str) -> None:
    say(f"voicebrush: {message}")


def describe_client_error(exc, server_named_by: str | None = None) -> str:
    """A VoicebrushError as a CLI user should read it: with the CLI's own options."""
    if exc.code == "invalid_token" or exc.status == 401:
        return (
            f"the daemon at {exc.server} refused the token. Pass the token it was started with: "
            "--token TOKEN, or set $VOICEBRUSH_TOKEN."
        )
    if exc.code == "unreachable" and server_named_by:
        return (
            f"cannot reach a voicebrush daemon at {exc.server} (from {server_named_by}). Is it running? "
            f"Start one with `voicebrush serve`, or leave out --server and $VOICEBRUSH_SERVER to run the command in this process."
        )
    return str(exc)


def progress_printer():
    """An on_event for Client.run_job: what was heard, then a progress bar (on stderr)."""
    from tqdm import tqdm

    state = {"bar": None}

    def on_event(event: str, data: dict) -> None:
        if event == "transcript":
            say(f"heard: {data.get('transcript', '')!r}")
            say(f"prompt: {data.get('prompt', '')!r}" + (f"  (without: {data['negative_prompt']!r})" if data.get("negative_prompt") else ""))
        elif event == "progress":
            if state["bar"] is None:
                state["bar"] = tqdm(total=data.get("steps", 0), desc="generating", unit="step", file=sys.stderr, leave=False)
            bar = state["bar"]
            bar.update(max(0, data.get("step", 0) - bar.n))
        elif state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    return on_event
