// Push-to-talk takes and the live words while speaking.
//
// A take records the microphone through an AudioWorklet (pcm-tap.js) as 16-bit PCM: the
// pieces stream to the daemon's Realtime transcription socket for live words, and the whole
// take goes up as a WAV when the button is let go. Where there is no AudioWorklet, the
// browser's MediaRecorder records the take (webm/opus), without live words.
//
// Why not stream the take into POST /v1/jobs/{id}/audio: browsers stream a request body
// only over HTTP/2 (Chromium refuses it on the daemon's HTTP/1.1 with
// ERR_ALPN_NEGOTIATION_FAILED), so the live words come over the WebSocket instead.

import { INSECURE_PAGE, PageProblem } from "./messages.js";

const TAKE_RATE = 16000; // Whisper's own rate: a third of the upload of 48 kHz
const SHORTEST_TAKE_S = 0.3;
const FLUSH_WAIT_MS = 1000;

export function microphonePossible() {
  return Boolean(window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

/** Start recording; resolves to a take with stop() -> {blob, filename, seconds}. */
export async function startTake({ onPcm } = {}) {
  if (!microphonePossible()) throw new PageProblem("insecure_page", INSECURE_PAGE);
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  try {
    if (window.AudioWorkletNode) return await PcmTake.start(stream, onPcm);
    return RecorderTake.start(stream);
  } catch (error) {
    stopTracks(stream);
    throw error;
  }
}

function stopTracks(stream) {
  for (const track of stream.getTracks()) track.stop();
}

function tooShort() {
  return new PageProblem("short_take", "That take was too short. Hold the button (or the space bar) while you speak, then let go.");
}

class PcmTake {
  static async start(stream, onPcm) {
    // Whisper's rate where the browser resamples the microphone for us (Chromium does);
    // else the device's own rate (Firefox will not mix rates), which the daemon resamples.
    for (const settings of [{ sampleRate: TAKE_RATE }, {}]) {
      let context = null;
      try {
        context = new AudioContext(settings);
        await context.audioWorklet.addModule("/page/pcm-tap.js");
        const source = context.createMediaStreamSource(stream);
        const tap = new AudioWorkletNode(context, "pcm-tap", { channelCount: 1, channelCountMode: "explicit" });
        source.connect(tap);
        tap.connect(context.destination); // pulled by the graph; it only ever writes silence
        if (context.state === "suspended") await context.resume();
        return new PcmTake(stream, context, source, tap, onPcm);
      } catch (error) {
        if (context) context.close().catch(() => {});
        if (!settings.sampleRate) throw error;
      }
    }
  }

  constructor(stream, context, source, tap, onPcm) {
    Object.assign(this, { stream, context, source, tap });
    this.rate = context.sampleRate;
    this.pieces = [];
    this.samples = 0;
    this.flushed = null;
    tap.port.onmessage = (event) => {
      if (event.data.pcm) {
        this.pieces.push(event.data.pcm);
        this.samples += event.data.pcm.length;
        if (onPcm) onPcm(event.data.pcm, this.rate);
      } else if (event.data.flushed && this.flushed) {
        this.flushed();
      }
    };
  }

  async stop() {
    await new Promise((resolve) => {
      this.flushed = resolve;
      this.tap.port.postMessage("flush");
      setTimeout(resolve, FLUSH_WAIT_MS);
    });
    this.close();
    const seconds = this.samples / this.rate;
    if (seconds < SHORTEST_TAKE_S) throw tooShort();
    return { blob: wav(this.pieces, this.samples, this.rate), filename: "take.wav", seconds };
  }

  close() {
    this.source.disconnect();
    this.tap.disconnect();
    stopTracks(this.stream);
    this.context.close().catch(() => {});
  }
}

class RecorderTake {
  static start(stream) {
    const kind = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((type) => MediaRecorder.isTypeSupported(type));
    const recorder = new MediaRecorder(stream, kind ? { mimeType: kind } : {});
    const take = new RecorderTake(stream, recorder);
    recorder.start(250);
    return take;
  }

  constructor(stream, recorder) {
    Object.assign(this, { stream, recorder });
    this.chunks = [];
    this.started = performance.now();
    recorder.ondataavailable = (event) => {
      if (event.data.size) this.chunks.push(event.data);
    };
  }

  async stop() {
    await new Promise((resolve) => {
      this.recorder.onstop = resolve;
      this.recorder.stop();
    });
    stopTracks(this.stream);
    const seconds = (performance.now() - this.started) / 1000;
    if (seconds < SHORTEST_TAKE_S || !this.chunks.length) throw tooShort();
    const type = this.recorder.mimeType || "audio/webm";
    const extension = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    return { blob: new Blob(this.chunks, { type }), filename: `take.${extension}`, seconds };
  }

  close() {
    if (this.recorder.state !== "inactive") this.recorder.stop();
    stopTracks(this.stream);
  }
}

/** A WAV file (16-bit mono) of the take's PCM pieces. */
function wav(pieces, samples, rate) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, value) => [...value].forEach((char, i) => header.setUint8(offset + i, char.charCodeAt(0)));
  text(0, "RIFF");
  header.setUint32(4, 36 + samples * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, rate, true);
  header.setUint32(28, rate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, "data");
  header.setUint32(40, samples * 2, true);
  return new Blob([header, ...pieces], { type: "audio/wav" });
}

function base64(pcm) {
  const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** The words of a take while it is spoken: its PCM to the Realtime transcription socket,
 *  whose deltas are the words that will not change any more. A nicety: if the socket cannot
 *  open, the take still works and its words come with the job. */
export class LiveWords {
  constructor(api, rate, onWords) {
    this.words = "";
    this.outbox = [];
    this.socket = null;
    try {
      this.socket = api.realtime();
    } catch {
      return; // e.g. a token a subprotocol cannot carry: no live words
    }
    this.outbox.push(
      JSON.stringify({
        type: "session.update",
        // Committed by the page (never: the take goes up whole), not by the daemon's VAD.
        session: { type: "transcription", audio: { input: { format: { type: "audio/pcm", rate }, turn_detection: null } } },
      }),
    );
    this.socket.onopen = () => {
      for (const message of this.outbox.splice(0)) this.socket.send(message);
    };
    this.socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "conversation.item.input_audio_transcription.delta" && message.delta) {
        this.words += message.delta;
        onWords(this.words.trim());
      }
    };
    this.socket.onerror = () => {
      this.socket = null;
    };
  }

  send(pcm) {
    if (!this.socket) return;
    const message = JSON.stringify({ type: "input_audio_buffer.append", audio: base64(pcm) });
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(message);
    else if (this.socket.readyState === WebSocket.CONNECTING) this.outbox.push(message);
  }

  close() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    this.socket = null;
  }
}
