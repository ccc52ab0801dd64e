// Microphone -> 20 ms frames (capture worklet) and reply audio -> speaker (player worklet,
// with its jitter buffer), each in an AudioContext at the call's own rate so the browser does
// the resampling. Analysers on both paths feed the level meters and the LevelLog.
import captureUrl from './capture-worklet.js?url';
import playerUrl from './player-worklet.js?url';
import { LevelLog, rmsOf } from './levels.js';

export const JITTER_MS = 60;

function analyserFor(ctx) {
  const a = ctx.createAnalyser();
  // About 20 ms of audio per reading.
  a.fftSize = ctx.sampleRate >= 16000 ? 512 : 256;
  a.smoothingTimeConstant = 0;
  return a;
}

async function captureContext(rate) {
  // A context at the call's rate makes Chrome resample the microphone; a browser that
  // refuses a media stream at that rate gets the device's own, and the worklet resamples.
  const ctx = new AudioContext({ sampleRate: rate, latencyHint: 'interactive' });
  return ctx;
}

export class VoicePath extends EventTarget {
  constructor({ upRate, upEncoding, downRate, jitterMs = JITTER_MS }) {
    super();
    this.upRate = upRate;
    this.upEncoding = upEncoding;
    this.downRate = downRate;
    this.jitterMs = jitterMs;
    this.log = new LevelLog();
    this.onFrame = () => {};
    this.onMarkPlayed = () => {};
    this.levels = { mic: 0, reply: 0 };
    this.framesSent = 0;
  }

  async start() {
    this.out = new AudioContext({ sampleRate: this.downRate, latencyHint: 'interactive' });
    await this.out.audioWorklet.addModule(playerUrl);
    this.player = new AudioWorkletNode(this.out, 'voicegw-player', {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { jitterMs: this.jitterMs },
    });
    this.replyAnalyser = analyserFor(this.out);
    this.player.connect(this.replyAnalyser).connect(this.out.destination);
    this.player.port.onmessage = (e) => {
      const m = e.data;
      if (m.played !== undefined) this.onMarkPlayed(m.played);
      else if (m.cleared !== undefined) this.log.cleared.push({ samples: m.cleared, marks: m.marks });
    };

    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false,
      },
    });
    let source;
    try {
      this.in = await captureContext(this.upRate);
      source = this.in.createMediaStreamSource(this.stream);
    } catch {
      if (this.in) this.in.close();
      this.in = new AudioContext({ latencyHint: 'interactive' });
      source = this.in.createMediaStreamSource(this.stream);
    }
    await this.in.audioWorklet.addModule(captureUrl);
    this.capture = new AudioWorkletNode(this.in, 'voicegw-capture', {
      numberOfInputs: 1, numberOfOutputs: 0,
      processorOptions: { rate: this.upRate, encoding: this.upEncoding },
    });
    this.capture.port.onmessage = (e) => { this.framesSent += 1; this.onFrame(e.data); };
    this.micAnalyser = analyserFor(this.in);
    source.connect(this.capture);
    source.connect(this.micAnalyser);
    this.source = source;
    const micScratch = new Float32Array(this.micAnalyser.fftSize);
    const replyScratch = new Float32Array(this.replyAnalyser.fftSize);
    this.timer = setInterval(() => {
      this.levels.mic = rmsOf(this.micAnalyser, micScratch);
      this.levels.reply = rmsOf(this.replyAnalyser, replyScratch);
      this.log.observe(this.levels.mic, this.levels.reply);
    }, 10);
    await Promise.all([this.out.resume(), this.in.resume()]);
  }

  play(pcm16) { // Int16Array at downRate; the buffer is handed over, not copied
    this.player.port.postMessage({ pcm: pcm16.buffer }, [pcm16.buffer]);
  }

  mark(name) { this.player.port.postMessage({ mark: name }); }

  clear() {
    this.log.clear();
    this.player.port.postMessage({ clear: true });
  }

  async stop() {
    clearInterval(this.timer);
    if (this.capture) this.capture.port.postMessage('stop');
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    await Promise.allSettled([this.in?.close(), this.out?.close()]);
  }
}
