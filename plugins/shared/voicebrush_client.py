"""Talk to a voicebrush daemon: jobs, storyboards, events, images, transcription, streamed dictation.

Standard library only and Python 3.7+, because it ships inside host applications
(Krita, Blender) that bring their own Python. Both plugins carry a copy of this
file; `make plugins` puts it there.

Everything here blocks; plugins call it from a worker thread.
"""

import base64
import http.client
import io
import json
import queue
import socket
import ssl
import struct
import threading
import time
import uuid
import wave
from urllib.parse import quote, urljoin, urlsplit

DEFAULT_SERVER = "http://127.0.0.1:7860"

# Options that /v1/jobs and /v1/images/generations understand besides the prompt.
GENERATION_OPTIONS = ("negative_prompt", "seed", "steps", "size", "n", "guidance_scale", "scheduler", "strength")

# The pictures a job can start from (PNG bytes), by the role /v1/jobs gives each:
# image (img2img), image + mask (inpaint: white = repaint), depth (white = near).
PICTURE_ROLES = ("image", "mask", "depth")

# Options that /v1/storyboards understands besides the script (language: a dictated one).
STORYBOARD_OPTIONS = ("style", "negative_prompt", "size", "steps", "seed", "seed_mode", "guidance_scale", "scheduler", "language")

TERMINAL_EVENTS = ("done", "failed", "cancelled")

# What an artist should read for each error the daemon (or the network) can give.
_SENTENCES = {
    "unreachable": "Cannot reach the voicebrush daemon at {server}. Is it running? Start it with `voicebrush serve`, or check the server URL.",
    "timeout": "The voicebrush daemon at {server} did not answer in time.",
    "invalid_token": "The voicebrush daemon refused the token. Set the token the daemon was started with (its --token or VOICEBRUSH_TOKEN) in the voicebrush settings.",
    "no_speech": "No speech was heard in the recording. Speak closer to the microphone, or type the prompt.",
    "no_shots": "The script has no shot to draw. Write one shot per line, or say \"shot one\", \"next shot\"...",
    "too_many_shots": "A storyboard holds at most 64 shots; split the script into several boards.",
    "out_of_memory": "The daemon ran out of memory. Try a smaller selection, fewer variants or fewer steps.",
    "invalid_audio": "The recording could not be read as audio.",
    "cancelled": "Generation was cancelled.",
    "rate_limited": "The daemon is busy with other work. Try again in a moment.",
    "forbidden": "The daemon refused this request (403): {detail}",
    "bad_response": "The server at {server} did not answer like a voicebrush daemon: {detail}",
}


class VoicebrushError(Exception):
    """A failure an artist can read: str() is a whole sentence.

    `code` is the daemon's error code ("no_speech", "invalid_token", ...) or one of
    the client's own ("unreachable", "timeout", "cancelled", "bad_response");
    `status` is the HTTP status when there was one; `message` is the detail as the
    daemon (or the network layer) gave it.
    """

    def __init__(self, message, code="error", status=None, param=None, server=None):
        self.message = message or ""
        self.code = code or "error"
        self.status = status
        self.param = param
        self.server = server
        super().__init__(self.sentence())

    def sentence(self):
        template = _SENTENCES.get(self.code)
        if template is None and self.status == 401:
            template = _SENTENCES["invalid_token"]
        if template is None and self.status == 429:
            template = _SENTENCES["rate_limited"]
        if template is None:
            detail = self.message or "unknown error"
            return detail if detail.endswith(".") else detail + "."
        return template.format(server=self.server or "the configured address", detail=self.message)

    def __str__(self):
        return self.sentence()


class JobResult(object):
    """A finished job: its record, the PNG bytes of every image, what was heard and drawn."""

    def __init__(self, job, images):
        self.job = job
        self.images = images

    @property
    def transcript(self):
        return self.job.get("transcript") or ""

    @property
    def prompt(self):
        return self.job.get("prompt") or ""

    @property
    def seed(self):
        return self.job.get("seed")

    def __repr__(self):
        return "JobResult(id=%r, prompt=%r, images=%d)" % (self.job.get("id"), self.prompt, len(self.images))


class EventReader(object):
    """A job's server-sent events, read on a background thread into `inbox`.

    Items are (name, data) pairs, or an exception when the stream broke or is not
    offered (then follow the job by polling). `on_event(name, data)`, if given, also
    sees each event as it arrives, on the reading thread.
    """

    def __init__(self, client, job_id, on_event=None, read_timeout=120.0):
        self.inbox = queue.Queue()
        self._on_event = on_event
        self._stop = threading.Event()
        self._connections = []
        self._thread = threading.Thread(target=self._pump, args=(client, job_id, read_timeout),
                                        name="voicebrush-events", daemon=True)
        self._thread.start()

    def _pump(self, client, job_id, read_timeout):
        try:
            for item in client._stream_events(job_id, read_timeout, self._connections.append):
                if self._stop.is_set():
                    return
                if self._on_event is not None:
                    try:
                        self._on_event(*item)
                    except Exception:  # a caller's callback must not end the stream
                        pass
                self.inbox.put(item)
            self.inbox.put(VoicebrushError("the event stream ended early", code="bad_response"))
        except Exception as exc:  # handed to follow_job, which falls back to polling
            self.inbox.put(exc)

    def close(self):
        self._stop.set()
        for conn in self._connections:
            _shut(conn)


class Dictation(object):
    """One spoken prompt, streamed to the daemon while it is recorded (Client.start_dictation).

        dictation = client.start_dictation(rate=16000, steps=20)
        dictation.push(pcm)               # from the recording thread; never blocks
        text, stable = dictation.partial  # e.g. from a UI timer: the words so far, the settled part
        transcript = dictation.finish()   # the artist let go: the final transcript
        result = dictation.wait(on_event=..., cancelled=...)  # the pictures, a JobResult
        dictation.cancel()                # at any time

    The audio goes up in one chunked POST from a background thread (http.client
    only). `streaming` is False when the daemon has no streaming: the take is then
    kept here and uploaded whole by finish(), and no partials come.
    """

    def __init__(self, client, rate, job_id, fields, on_partial=None, on_event=None, pictures=None):
        self.client = client
        self.rate = int(rate)
        self.job_id = job_id
        self.streaming = job_id is not None
        self.partial = ("", "")
        self.transcript = None
        self.events = None
        self._fields = fields
        self._pictures = dict(pictures or {})  # image/mask/depth PNG bytes, for the whole-file fallback
        self._on_partial = on_partial
        self._on_event = on_event
        self._chunks = queue.Queue()
        self._kept = bytearray()  # the take, when the daemon has no streaming
        self._error = None
        self._finished = False
        self._cancelled = False
        self._sender = None
        if self.streaming:
            self.events = EventReader(client, job_id, on_event=self._seen)
            self._sender = threading.Thread(target=self._send, name="voicebrush-audio", daemon=True)
            self._sender.start()

    def push(self, pcm):
        """Add recorded audio: bytes of 16-bit little-endian mono PCM at `rate`."""
        if self._finished or self._cancelled or self._error is not None or not pcm:
            return
        if self.streaming:
            self._chunks.put(bytes(pcm))
        else:
            self._kept.extend(pcm)

    def finish(self, timeout=300.0):
        """End of speech: returns the final transcript (the daemon's one-shot transcript
        of the very same samples). The job then generates; wait() follows it."""
        if self._finished:
            if self._error is not None:
                raise self._error
            return self.transcript
        self._finished = True
        if not self.streaming:
            return self._upload_whole(timeout)
        self._chunks.put(None)
        self._sender.join(timeout)
        if self._sender.is_alive():
            raise VoicebrushError("no transcript within %.0f s" % timeout, code="timeout", server=self.client.server)
        if self._error is not None:
            raise self._error
        return self.transcript

    def wait(self, on_event=None, cancelled=None, poll_interval=0.5):
        """Follow the job to its pictures, as Client.run_job does (finishes the take first)."""
        self.finish()
        return self.client.follow_job(self.job_id, on_event=on_event, cancelled=cancelled,
                                      poll_interval=poll_interval, events=self.events)

    def cancel(self):
        """Stop: the daemon cancels the job and drops the audio."""
        if self._cancelled:
            return
        self._cancelled = True
        if self.job_id is not None:
            try:
                self.client.cancel(self.job_id)
            except VoicebrushError:
                pass
        self._chunks.put(None)  # ends the upload, whose answer is then "cancelled"
        if self.events is not None:
            self.events.close()

    # -- on the background threads ------------------------------------------

    def _seen(self, name, data):
        if self._on_event is not None:
            self._on_event(name, data)
        if name == "partial" and isinstance(data, dict):
            self.partial = (data.get("text") or "", data.get("stable") or "")
            if self._on_partial is not None:
                self._on_partial(*self.partial)
        elif name == "transcript" and isinstance(data, dict) and self.transcript is None:
            self.transcript = data.get("transcript") or ""

    def _send(self):
        client = self.client
        conn = client._connection()
        try:
            conn.putrequest("POST", client._prefix + "/v1/jobs/" + quote(str(self.job_id), safe="") + "/audio",
                            skip_accept_encoding=True)
            headers = client._headers("audio/L16;rate=%d;channels=1" % self.rate)
            headers["Transfer-Encoding"] = "chunked"
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            ended = False
            while not ended:
                pieces = [self._chunks.get()]
                while pieces[-1] is not None:  # whatever else waits goes in the same chunk
                    try:
                        pieces.append(self._chunks.get_nowait())
                    except queue.Empty:
                        break
                ended = pieces[-1] is None
                data = b"".join(piece for piece in pieces if piece is not None)
                if data:
                    conn.send(("%x\r\n" % len(data)).encode("ascii") + data + b"\r\n")
            conn.send(b"0\r\n\r\n")
            conn.sock.settimeout(max(client.timeout, 300.0))  # the final decode may take a while on a CPU
            response = conn.getresponse()
            body = response.read()
            if response.status >= 400:
                self._error = client._error_from(response.status, body)
            else:
                self.transcript = _json(body, client.server).get("text", "")
        except socket.timeout:
            self._error = VoicebrushError("no answer within %.0f s" % client.timeout, code="timeout", server=client.server)
        except (OSError, http.client.HTTPException) as exc:
            self._error = VoicebrushError(str(exc), code="unreachable", server=client.server)
        except VoicebrushError as exc:
            self._error = exc
        finally:
            conn.close()
        if self._cancelled and self._error is not None:
            self._error = VoicebrushError("cancelled", code="cancelled", server=client.server)

    def _upload_whole(self, timeout):
        """Without streaming: the take as a WAV file in an ordinary job; returns its transcript."""
        if self._cancelled:
            raise VoicebrushError("cancelled", code="cancelled", server=self.client.server)
        options = dict((key, value) for key, value in self._fields.items() if key in GENERATION_OPTIONS)
        options.update(self._pictures)
        job = self.client.submit_job(prompt=self._fields.get("prompt"), audio=encode_wav(bytes(self._kept), self.rate),
                                     **options)
        self.job_id = job["id"]
        self._kept = bytearray()
        self.events = EventReader(self.client, self.job_id, on_event=self._seen)
        deadline = time.monotonic() + timeout
        while self.transcript is None and time.monotonic() < deadline:
            record = self.client.get_job(self.job_id)
            if record.get("transcript") is not None or record.get("status") in TERMINAL_EVENTS:
                if self.transcript is None:
                    self.transcript = record.get("transcript") or ""
                break
            time.sleep(0.2)
        return self.transcript


class Client(object):
    """One daemon at `server`, with an optional bearer token.

    `timeout` bounds connecting and each wait for an answer, so a dead or missing
    daemon fails within seconds instead of hanging the caller.
    """

    def __init__(self, server=DEFAULT_SERVER, token="", timeout=10.0):
        server = (server or DEFAULT_SERVER).strip()
        if "://" not in server:
            server = "http://" + server
        self.server = server.rstrip("/")
        self.token = (token or "").strip()
        self.timeout = float(timeout)
        parts = urlsplit(self.server)
        try:
            port = parts.port
        except ValueError:  # "host:abc", or past 65535: urlsplit only finds out when asked
            port = -1
        # Spaces and control characters would fail later, inside http.client, as something else.
        odd = any(character.isspace() or not character.isprintable() for character in self.server)
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or odd:
            raise VoicebrushError("%r is not a daemon address; give one like http://127.0.0.1:7860." % server, code="bad_url")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")

    # -- routes -------------------------------------------------------------

    def health(self):
        """The daemon's health record; {"status": "loading"} while models load."""
        status, _, body = self._call("GET", "/v1/health", accept_statuses=(503,))
        data = _json(body, self.server)
        if status == 503 and "status" not in data:
            raise self._error_from(status, body)
        return data

    def submit_job(self, prompt=None, audio=None, audio_filename="speech.wav", image=None, mask=None, depth=None, **options):
        """Queue a job: a typed prompt, or audio (bytes) to transcribe (a prompt then overrides the transcript).

        `image`, `mask`, `depth` (PNG bytes) are the pictures it starts from: an image is
        redrawn (img2img, `strength` says how much may change, default 0.75); with a mask
        only the mask's white part is repainted (inpaint); a depth map (white = near) lays
        out a new picture (depth). The job record's `mode` says which ran and `inputs`
        has the stored copies' URLs."""
        fields = _job_fields(prompt, options)
        files = _picture_files(image=image, mask=mask, depth=depth)
        if audio is not None:
            files["file"] = (audio_filename, audio, _audio_type(audio_filename))
        if files:
            if audio is None and not fields.get("prompt"):
                raise VoicebrushError("Type or say a prompt first.", code="empty_prompt")
            body, content_type = encode_multipart(fields, files)
        else:
            if not fields.get("prompt"):
                raise VoicebrushError("Type or say a prompt first.", code="empty_prompt")
            body, content_type = json.dumps(fields).encode("utf-8"), "application/json"
        _, _, data = self._call("POST", "/v1/jobs", body=body, content_type=content_type)
        return _json(data, self.server)

    def get_job(self, job_id):
        _, _, body = self._call("GET", "/v1/jobs/" + quote(str(job_id), safe=""))
        return _json(body, self.server)

    def list_jobs(self, limit=20):
        _, _, body = self._call("GET", "/v1/jobs?limit=%d" % int(limit))
        return _json(body, self.server).get("data", [])

    def cancel(self, job_id):
        """Ask the daemon to stop a job; it stops within one denoising step."""
        _, _, body = self._call("DELETE", "/v1/jobs/" + quote(str(job_id), safe=""))
        return _json(body, self.server) if body.strip() else {}

    def events(self, job_id, read_timeout=120.0):
        """Server-sent events of a job as (event name, decoded data), ending after the terminal one.

        `read_timeout` bounds the silence between two events; past it the
        iterator raises VoicebrushError(code="timeout").
        """
        return self._stream_events(job_id, read_timeout, lambda conn: None)

    def _stream_events(self, job_id, read_timeout, on_connected):
        path = "/v1/jobs/" + quote(str(job_id), safe="") + "/events"
        return self._stream(path, read_timeout, on_connected, lambda name, data: name in TERMINAL_EVENTS)

    def _stream(self, path, read_timeout, on_connected, is_last):
        conn, response = self._open("GET", path, headers={"Accept": "text/event-stream"})
        on_connected(conn)
        try:
            if response.status >= 400:
                raise self._error_from(response.status, response.read())
            conn.stream_socket.settimeout(read_timeout)
            for name, data in parse_sse(response):
                yield name, data
                if is_last(name, data):
                    return
        except socket.timeout:
            raise VoicebrushError("no event for %.0f s" % read_timeout, code="timeout", server=self.server)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # ValueError: the socket was closed under us by run_job giving up on the stream.
            raise VoicebrushError(str(exc), code="unreachable", server=self.server)
        finally:
            conn.close()

    def fetch(self, url):
        """The bytes at `url` (an image URL from a job record), resolved against the server URL."""
        absolute = urljoin(self.server + "/", url)
        parts = urlsplit(absolute)
        if (parts.hostname, parts.port or self._port) == (self._host, self._port):
            path = parts.path + ("?" + parts.query if parts.query else "")
            _, _, body = self._call("GET", path, raw_path=True)
            return body
        # Another host (e.g. a CDN in front of the daemon): no token leaves for it.
        other = Client(absolute, timeout=self.timeout)
        _, _, body = other._call("GET", parts.path, raw_path=True)
        return body

    def transcribe(self, audio_bytes, filename="speech.wav", language=None):
        """What was said in the audio, via the OpenAI-compatible transcription route."""
        fields = {"model": "whisper-1", "response_format": "json"}
        if language:
            fields["language"] = language
        body, content_type = encode_multipart(fields, {"file": (filename, audio_bytes, _audio_type(filename))})
        _, _, data = self._call("POST", "/v1/audio/transcriptions", body=body, content_type=content_type)
        return _json(data, self.server).get("text", "")

    def generate(self, prompt, response_format="b64_json", **options):
        """The OpenAI-compatible image route: PNG bytes for each image, without a job."""
        if "strength" in options:
            raise TypeError("generate() is text to image; start from a picture with run_job(image=...)")
        fields = _job_fields(prompt, options)
        fields["response_format"] = response_format
        _, _, data = self._call("POST", "/v1/images/generations", body=json.dumps(fields).encode("utf-8"),
                                content_type="application/json")
        images = []
        for item in _json(data, self.server).get("data", []):
            images.append(base64.b64decode(item["b64_json"]) if "b64_json" in item else self.fetch(item["url"]))
        return images

    # -- the whole job ------------------------------------------------------

    def run_job(self, prompt=None, audio=None, on_event=None, cancelled=None, audio_filename="speech.wav",
                poll_interval=0.5, image=None, mask=None, depth=None, **options):
        """Submit a job, follow it to the end and fetch its images.

        `on_event(name, data)` sees every event (transcript, progress, the terminal
        one); `cancelled()` returning True cancels the job on the daemon. Raises
        VoicebrushError when the job fails, is cancelled, or the daemon goes away.
        `image`, `mask`, `depth` and `strength` are submit_job's.
        """
        job = self.submit_job(prompt=prompt, audio=audio, audio_filename=audio_filename,
                              image=image, mask=mask, depth=depth, **options)
        return self.follow_job(job["id"], on_event=on_event, cancelled=cancelled, poll_interval=poll_interval)

    def follow_job(self, job_id, on_event=None, cancelled=None, poll_interval=0.5, events=None):
        """Follow a submitted job to its end and fetch its images (see run_job).

        `events`: an EventReader already following the job (a Dictation has one);
        without it, one is started here."""
        emit = on_event or (lambda name, data: None)
        is_cancelled = cancelled or (lambda: False)
        # The event stream blocks in its own thread so cancellation is noticed while it waits.
        reader = events or EventReader(self, job_id)
        final = None
        cancel_sent_at = None
        polling = False
        last_progress = None
        try:
            while final is None:
                if cancel_sent_at is None and is_cancelled():
                    cancel_sent_at = time.monotonic()
                    try:
                        self.cancel(job_id)
                    except VoicebrushError as exc:
                        if exc.code in ("unreachable", "timeout", "invalid_token"):
                            raise
                        # Otherwise the job has just ended (409/404): its terminal event tells how.
                if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > self.timeout + 20:
                    raise VoicebrushError("the daemon did not confirm the cancel", code="cancelled", server=self.server)
                if polling:
                    time.sleep(poll_interval)
                    record = self.get_job(job_id)
                    progress = record.get("progress") or {}
                    step = (progress.get("step"), progress.get("steps"))
                    if step != last_progress and step[0] is not None:
                        last_progress = step
                        emit("progress", {"id": job_id, "step": step[0], "steps": step[1]})
                    if record.get("status") in TERMINAL_EVENTS:
                        final = record["status"], record
                    continue
                try:
                    item = reader.inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, Exception):
                    # The stream broke or is not offered: follow the job by polling instead.
                    polling = True
                    continue
                name, data = item
                emit(name, data)
                if name in TERMINAL_EVENTS:
                    final = (name, data if isinstance(data, dict) and data.get("id") else self.get_job(job_id))
        finally:
            reader.close()

        name, record = final
        if name == "done" or record.get("status") == "done":
            images = [self.fetch(url) for url in record.get("images") or []]
            return JobResult(record, images)
        if name == "cancelled" or record.get("status") == "cancelled":
            raise VoicebrushError("cancelled", code="cancelled", server=self.server)
        error = record.get("error") or {}
        raise VoicebrushError(error.get("message") or "the job failed", code=error.get("code") or "job_failed",
                              param=error.get("param"), server=self.server)

    # -- streamed dictation ---------------------------------------------------

    def start_dictation(self, rate=16000, language=None, prompt=None, on_partial=None, on_event=None,
                        image=None, mask=None, depth=None, transcribe_only=False, **options):
        """Start a spoken prompt that is sent while it is recorded; returns a Dictation.

        Feed it 16-bit little-endian mono PCM at `rate` (8000 to 48000 Hz) with push()
        as the recorder delivers it, then finish() when the artist lets go, then wait()
        for the pictures. `on_partial(text, stable)` is called, on a background thread,
        with the words heard so far and the part of them that will not change;
        `on_event(name, data)` sees every event of the job as it arrives (same thread).
        A daemon without streaming gets the whole take uploaded by finish(), as before.
        `image`, `mask`, `depth` (PNG bytes) and `strength` are submit_job's: the pictures
        go up with the job (base64 in its JSON), before the audio.
        `transcribe_only`: the take is for its words (finish() returns them); the job ends
        done and draws nothing. A daemon that predates it draws, so cancel() after finish().
        """
        fields = _job_fields(prompt, options)
        pictures = dict((role, part[1]) for role, part in _picture_files(image=image, mask=mask, depth=depth).items())
        fields["stream_audio"] = True
        if transcribe_only:
            fields["transcribe_only"] = True
        if language:
            fields["language"] = language
        body = dict(fields, **dict((role, base64.b64encode(data).decode("ascii")) for role, data in pictures.items()))
        try:
            _, _, data = self._call("POST", "/v1/jobs", body=json.dumps(body).encode("utf-8"),
                                    content_type="application/json")
        except VoicebrushError as exc:
            if exc.status == 400 and exc.param == "prompt":
                return Dictation(self, rate, None, fields, on_partial, on_event, pictures)  # a daemon without streaming
            raise
        job = _json(data, self.server)
        if job.get("status") != "listening":
            # A daemon without streaming took the typed prompt as a whole job: undo that.
            try:
                self.cancel(job.get("id", ""))
            except VoicebrushError:
                pass
            return Dictation(self, rate, None, fields, on_partial, on_event, pictures)
        return Dictation(self, rate, job["id"], fields, on_partial, on_event, pictures)

    def dictate(self, pcm_chunks, rate=16000, language=None, prompt=None, on_partial=None, on_event=None,
                cancelled=None, **options):
        """A whole streamed dictation: send each chunk of `pcm_chunks` (an iterable, which may
        block while it records), then follow the job to its pictures; returns a JobResult."""
        dictation = self.start_dictation(rate=rate, language=language, prompt=prompt, on_partial=on_partial, **options)
        try:
            for chunk in pcm_chunks:
                if cancelled is not None and cancelled():
                    raise VoicebrushError("cancelled", code="cancelled", server=self.server)
                dictation.push(chunk)
            dictation.finish()
        except BaseException:
            dictation.cancel()
            raise
        return dictation.wait(on_event=on_event, cancelled=cancelled)

    # -- storyboards ----------------------------------------------------------
    #
    # A board is a list of shots, each drawn by an ordinary job. Its record:
    # {"id", "status" (running, then done / cancelled / failed), "size", "seed", ...,
    #  "shots": [{"index" (from 1), "text" (the caption), "prompt", "job", "status",
    #             "image" (URL once drawn), "error", "history" (earlier jobs)}],
    #  "sheet": {"png": URL, "pdf": URL}}

    def create_storyboard(self, script=None, shots=None, audio=None, audio_filename="script.wav", **options):
        """Queue a storyboard from a script (text: one shot per line, or split at "shot two",
        "next shot", "cut to"...), an explicit list of shot texts, or a dictated script
        (audio bytes). Options: style, negative_prompt, size ("WxH" or (w, h); default 16:9),
        steps, seed, seed_mode ("same" or "sequence"), guidance_scale, scheduler, and
        language for audio. Returns the board record (every shot already has its job)."""
        unknown = set(options) - set(STORYBOARD_OPTIONS)
        if unknown:
            raise TypeError("unknown storyboard option(s): %s" % ", ".join(sorted(unknown)))
        fields = {}
        for key in STORYBOARD_OPTIONS:
            value = options.get(key)
            if value is None or value == "":
                continue
            fields[key] = format_size(value) if key == "size" else value
        given = [name for name, value in (("script", script), ("shots", shots), ("audio", audio)) if value is not None]
        if len(given) != 1:
            raise VoicebrushError("Give a script, a list of shots or a dictated script (one of them).", code="no_shots")
        if audio is not None:
            body, content_type = encode_multipart(fields, {"file": (audio_filename, audio, _audio_type(audio_filename))})
        else:
            fields.pop("language", None)
            if script is not None:
                if not str(script).strip():
                    raise VoicebrushError("The script is empty.", code="no_shots")
                fields["script"] = str(script)
            else:
                fields["shots"] = [str(shot) for shot in shots]
            body, content_type = json.dumps(fields).encode("utf-8"), "application/json"
        _, _, data = self._call("POST", "/v1/storyboards", body=body, content_type=content_type)
        return _json(data, self.server)

    def get_storyboard(self, board_id):
        _, _, body = self._call("GET", _board_path(board_id))
        return _json(body, self.server)

    def list_storyboards(self, limit=20):
        """Storyboards, newest first."""
        _, _, body = self._call("GET", "/v1/storyboards?limit=%d" % int(limit))
        return _json(body, self.server).get("data", [])

    def cancel_storyboard(self, board_id):
        """Stop every unfinished shot (finished panels stay); returns the board."""
        _, _, body = self._call("DELETE", _board_path(board_id))
        return _json(body, self.server)

    def redo_shot(self, board_id, index, text=None, seed=None):
        """Draw shot `index` (from 1) again as a new job, optionally with a new text or seed
        (without a seed: a new text keeps the shot's seed, a plain redo takes a new one).
        Returns the board; its shot names the new job (follow it with follow_job)."""
        fields = {}
        if text is not None:
            fields["text"] = str(text)
        if seed is not None:
            fields["seed"] = int(seed)
        _, _, body = self._call("POST", _board_path(board_id) + "/shots/%d" % int(index),
                                body=json.dumps(fields).encode("utf-8"), content_type="application/json")
        return _json(body, self.server)

    def storyboard_events(self, board_id, read_timeout=120.0):
        """The board's server-sent events as (event name, data): each shot's job events
        (progress, done, failed, cancelled) with data["index"] naming the shot, "redo" when
        a shot gets a new job, and last "done" whose data is the board (no "index")."""
        return self._stream(_board_path(board_id) + "/events", read_timeout, lambda conn: None, _is_board_end)

    def fetch_sheet(self, board_id, kind="png"):
        """The contact sheet's bytes: kind "png" (one page) or "pdf" (A4 landscape pages)."""
        if kind not in ("png", "pdf"):
            raise ValueError("kind must be 'png' or 'pdf', got %r" % (kind,))
        _, _, body = self._call("GET", _board_path(board_id) + "/sheet." + kind)
        return body

    def follow_storyboard(self, board_id, on_event=None, cancelled=None, poll_interval=0.5):
        """Follow a board to its end and return its final record.

        `on_event(name, data)` sees each shot's events (data["index"] is the shot) as they
        happen, so panels can be filled in while the rest are drawn; `cancelled()` returning
        True cancels the board. If the event stream breaks, the board is polled instead
        (the events are then made from its record: progress, and each shot's ending)."""
        emit = on_event or (lambda name, data: None)
        is_cancelled = cancelled or (lambda: False)
        inbox = queue.Queue()
        stop_reading = threading.Event()
        connections = []

        def pump():
            try:
                path = _board_path(board_id) + "/events"
                for item in self._stream(path, 120.0, connections.append, _is_board_end):
                    if stop_reading.is_set():
                        return
                    inbox.put(item)
                inbox.put(VoicebrushError("the event stream ended early", code="bad_response"))
            except Exception as exc:  # handed over: the board is polled instead
                inbox.put(exc)

        reader = threading.Thread(target=pump, name="voicebrush-board-events", daemon=True)
        reader.start()
        cancel_sent = False
        seen, ended = {}, set()  # what the stream already told, so polling does not repeat it
        try:
            while True:
                if not cancel_sent and is_cancelled():
                    cancel_sent = True
                    self.cancel_storyboard(board_id)
                try:
                    item = inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, Exception):
                    break
                name, data = item
                emit(name, data)
                if _is_board_end(name, data):
                    return data
                if name in TERMINAL_EVENTS and isinstance(data, dict):
                    ended.add((data.get("index"), data.get("id")))
        finally:
            stop_reading.set()
            for conn in connections:
                _shut(conn)
        while True:  # polling, once the stream is gone
            board = self.get_storyboard(board_id)
            for shot in board.get("shots", []):
                key = shot.get("index")
                state = (shot.get("job"), shot.get("status"), (shot.get("progress") or {}).get("step"))
                if seen.get(key) != state:
                    seen[key] = state
                    data = {"index": key, "id": shot.get("job"), "status": shot.get("status"),
                            "images": [shot["image"]] if shot.get("image") else [], "error": shot.get("error")}
                    if shot.get("status") in TERMINAL_EVENTS:
                        if (key, shot.get("job")) not in ended:
                            emit(shot["status"], data)
                    elif state[2]:
                        emit("progress", dict(data, step=state[2], steps=(shot.get("progress") or {}).get("steps")))
            if board.get("status") != "running":
                emit("done", board)
                return board
            if not cancel_sent and is_cancelled():
                cancel_sent = True
                self.cancel_storyboard(board_id)
            time.sleep(poll_interval)

    def run_storyboard(self, script=None, shots=None, audio=None, on_event=None, cancelled=None,
                       audio_filename="script.wav", **options):
        """Create a board and follow it to the end (see follow_storyboard); returns the final record.
        Shots that failed or were cancelled are in it with their status; nothing is raised for them."""
        board = self.create_storyboard(script=script, shots=shots, audio=audio, audio_filename=audio_filename, **options)
        return self.follow_storyboard(board["id"], on_event=on_event, cancelled=cancelled)

    # -- HTTP plumbing ------------------------------------------------------

    def _open(self, method, path, body=None, content_type=None, headers=None, raw_path=False):
        """Connect (bounded by `timeout`) and send; returns the connection and its response."""
        url_path = path if raw_path else self._prefix + path
        all_headers = self._headers(content_type)
        all_headers.update(headers or {})
        conn = self._connection()
        try:
            conn.request(method, url_path, body=body, headers=all_headers)
            # Kept because http.client drops conn.sock once a "Connection: close" answer arrives,
            # and the event stream needs it to change its timeout and to be woken up.
            conn.stream_socket = conn.sock
            response = conn.getresponse()
        except socket.timeout:
            conn.close()
            raise VoicebrushError("no answer within %.0f s" % self.timeout, code="timeout", server=self.server)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise VoicebrushError(str(exc), code="unreachable", server=self.server)
        return conn, response

    def _connection(self):
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _headers(self, content_type=None):
        headers = {"Accept": "application/json", "User-Agent": "voicebrush-client/1"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _call(self, method, path, body=None, content_type=None, accept_statuses=(), raw_path=False):
        conn, response = self._open(method, path, body=body, content_type=content_type, raw_path=raw_path)
        try:
            data = response.read()
        except socket.timeout:
            raise VoicebrushError("no answer within %.0f s" % self.timeout, code="timeout", server=self.server)
        except (OSError, http.client.HTTPException) as exc:
            raise VoicebrushError(str(exc), code="unreachable", server=self.server)
        finally:
            conn.close()
        if response.status >= 400 and response.status not in accept_statuses:
            raise self._error_from(response.status, data)
        return response.status, response.getheaders(), data

    def _error_from(self, status, body):
        try:
            error = json.loads(body.decode("utf-8")).get("error") or {}
        except (ValueError, AttributeError, UnicodeDecodeError):
            error = {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        code = error.get("code")
        if status == 401:
            code = "invalid_token"
        elif status == 403 and not code:
            code = "forbidden"
        elif status == 429:
            code = "rate_limited"
        message = error.get("message") or "HTTP %d" % status
        return VoicebrushError(message, code=code or "http_%d" % status, status=status,
                               param=error.get("param"), server=self.server)


# -- pure helpers -------------------------------------------------------------


def parse_sse(lines):
    """(event, data) pairs from an iterable of SSE lines (bytes or str); data is JSON-decoded when it can be."""
    name, data_lines = "message", []
    for raw in lines:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if not line:
            if data_lines:
                text = "\n".join(data_lines)
                try:
                    data = json.loads(text)
                except ValueError:
                    data = text
                yield name, data
            name, data_lines = "message", []
            continue
        if line.startswith(":"):
            continue  # a comment, e.g. a keep-alive
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            name = value
        elif field == "data":
            data_lines.append(value)


def encode_multipart(fields, files):
    """A multipart/form-data body: `fields` {name: value}, `files` {name: (filename, bytes, type)}."""
    boundary = "voicebrush-" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        if value is None:
            continue
        out.write(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (boundary, name)).encode("utf-8"))
        out.write(str(value).encode("utf-8"))
        out.write(b"\r\n")
    for name, (filename, content, content_type) in files.items():
        safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        out.write(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                   "Content-Type: %s\r\n\r\n" % (boundary, name, safe_name, content_type)).encode("utf-8"))
        out.write(content)
        out.write(b"\r\n")
    out.write(("--%s--\r\n" % boundary).encode("utf-8"))
    return out.getvalue(), "multipart/form-data; boundary=" + boundary


def encode_wav(pcm_s16le, sample_rate=16000, channels=1):
    """A WAV file around raw signed 16-bit little-endian samples."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm_s16le)
    return out.getvalue()


def pcm_level(pcm_s16le):
    """Peak level of s16le samples from 0.0 (silence) to 1.0 (full scale), for a level meter."""
    count = len(pcm_s16le) // 2
    if not count:
        return 0.0
    samples = struct.unpack("<%dh" % count, pcm_s16le[:count * 2])
    return min(1.0, max(abs(s) for s in samples) / 32767.0)


def png_size(png_bytes):
    """(width, height) from a PNG's header."""
    if png_bytes[:8] != b"\x89PNG\r\n\x1a\n" or png_bytes[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return struct.unpack(">II", png_bytes[16:24])


def snap_to_8(side):
    """The nearest side length Stable Diffusion accepts: a multiple of 8 from 64 to 2048."""
    return int(min(2048, max(64, int(round(side / 8.0)) * 8)))


def fit_generation_size(target_w, target_h, max_side=768):
    """The size to generate for a target area: its aspect, the longer side `max_side`
    (the model's native size), each side a multiple of 8 from 64 to 2048.

    The result is then scaled to the target, so a small selection still gets a
    full-quality generation and a large canvas is not asked of the model directly.
    """
    if target_w <= 0 or target_h <= 0:
        raise ValueError("target size must be positive, got %rx%r" % (target_w, target_h))
    scale = float(max_side) / max(target_w, target_h)
    return snap_to_8(target_w * scale), snap_to_8(target_h * scale)


def format_size(size):
    """"WxH" from a (w, h) pair or an already formatted string."""
    if isinstance(size, str):
        return size
    width, height = size
    return "%dx%d" % (int(width), int(height))


def _job_fields(prompt, options):
    unknown = set(options) - set(GENERATION_OPTIONS)
    if unknown:
        raise TypeError("unknown generation option(s): %s" % ", ".join(sorted(unknown)))
    fields = {}
    if prompt is not None and str(prompt).strip():
        fields["prompt"] = str(prompt).strip()
    for key in GENERATION_OPTIONS:
        value = options.get(key)
        if value is None or value == "":
            continue
        fields[key] = format_size(value) if key == "size" else value
    return fields


def _picture_files(**pictures):
    """Multipart file parts for the pictures given (PNG bytes), by role."""
    files = {}
    for role in PICTURE_ROLES:
        data = pictures.get(role)
        if data is None:
            continue
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("%s must be PNG bytes, not %s" % (role, type(data).__name__))
        if not data:
            raise VoicebrushError("The %s to start from is empty." % role, code="empty_picture")
        files[role] = (role + ".png", bytes(data), "image/png")
    return files


def _board_path(board_id):
    return "/v1/storyboards/" + quote(str(board_id), safe="")


def _is_board_end(name, data):
    """The board's own last event: "done" with the board, not a shot's "done"."""
    return name == "done" and not (isinstance(data, dict) and "index" in data)


def _shut(conn):
    """Wake a thread blocked reading `conn` (closing alone does not)."""
    sock = getattr(conn, "stream_socket", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    conn.close()


def _audio_type(filename):
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {
        "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg",
        "webm": "audio/webm", "m4a": "audio/mp4",
    }.get(extension, "application/octet-stream")


def _json(body, server):
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise VoicebrushError("not JSON: %r" % body[:80], code="bad_response", server=server)
    if not isinstance(data, dict):
        raise VoicebrushError("unexpected JSON: %r" % (data,), code="bad_response", server=server)
    return data
