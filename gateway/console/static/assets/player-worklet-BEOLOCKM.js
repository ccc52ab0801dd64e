// The reply's path to the speaker: a queue of PCM chunks and marks with a small jitter
// buffer. Playing starts once `jitterMs` of audio is queued (or a short reply has waited that
// long); a mark is reported back when every sample queued before it has been played; `clear`
// drops everything queued at once (a barge-in), marks included, since that audio was never
// heard. Self-contained: an AudioWorklet module is loaded as its own file.

class PlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions ?? {};
    this.prebuffer = Math.round(((o.jitterMs ?? 60) * sampleRate) / 1000);
    this.queue = []; // {pcm: Float32Array, off} | {mark}
    this.queued = 0; // samples in the queue
    this.playing = false;
    this.waited = 0; // samples rendered while audio sat below the prebuffer
    this.played = 0; // samples of reply audio played, all told
    this.port.onmessage = (e) => this.receive(e.data);
  }

  receive(m) {
    if (m.pcm) {
      const src = new Int16Array(m.pcm);
      const f = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) f[i] = src[i] / 0x8000;
      this.queue.push({ pcm: f, off: 0 });
      this.queued += f.length;
    } else if (m.mark !== undefined) {
      this.queue.push({ mark: m.mark });
    } else if (m.clear) {
      const marks = this.queue.filter((item) => item.mark !== undefined).length;
      this.port.postMessage({ cleared: this.queued, marks, at: currentTime });
      this.queue = [];
      this.queued = 0;
      this.playing = false;
      this.waited = 0;
    }
  }

  flushMarks() {
    while (this.queue.length && this.queue[0].mark !== undefined) {
      this.port.postMessage({ played: this.queue.shift().mark });
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    this.flushMarks();
    if (!this.playing && this.queued > 0) {
      if (this.queued >= this.prebuffer || this.waited >= this.prebuffer) this.playing = true;
      else this.waited += out.length;
    }
    if (this.playing) {
      while (i < out.length && this.queue.length) {
        const item = this.queue[0];
        if (item.mark !== undefined) {
          this.port.postMessage({ played: item.mark });
          this.queue.shift();
          continue;
        }
        const n = Math.min(out.length - i, item.pcm.length - item.off);
        out.set(item.pcm.subarray(item.off, item.off + n), i);
        item.off += n;
        i += n;
        this.queued -= n;
        this.played += n;
        if (item.off === item.pcm.length) this.queue.shift();
      }
      this.flushMarks();
      if (this.queued === 0) { // ran dry: buffer again before the next audio
        this.playing = false;
        this.waited = 0;
      }
    }
    out.fill(0, i);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor('voicegw-player', PlayerProcessor);
