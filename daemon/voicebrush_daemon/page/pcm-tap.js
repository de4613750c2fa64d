// AudioWorklet processor: the microphone's samples as 16-bit PCM (mono), posted to the page
// in pieces of about 100 ms. "flush" posts what is left, then {flushed: true}.

class PcmTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.piece = new Int16Array(Math.round(sampleRate / 10));
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post();
        this.port.postMessage({ flushed: true });
      }
    };
  }

  post() {
    if (!this.filled) return;
    const pcm = this.piece.slice(0, this.filled);
    this.port.postMessage({ pcm }, [pcm.buffer]);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length) {
      const frames = channels[0].length;
      for (let i = 0; i < frames; i++) {
        let sum = 0;
        for (const channel of channels) sum += channel[i];
        const sample = Math.max(-1, Math.min(1, sum / channels.length));
        this.piece[this.filled++] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
        if (this.filled === this.piece.length) this.post();
      }
    }
    return true;
  }
}

registerProcessor("pcm-tap", PcmTap);
