// The microphone's path to the gateway: 20 ms frames of PCM16 (little-endian) at the
// call's rate, or G.711 mu-law at 8 kHz. Self-contained: an AudioWorklet module is loaded as
// its own file. The page opens its capture context at the call's rate, so Chrome resamples
// the device; if it could not, this resamples linearly (averaging first when decimating).

function muLaw(sample) {
  const BIAS = 0x84;
  const CLIP = 32635;
  let s = sample;
  const sign = s < 0 ? 0x80 : 0;
  if (s < 0) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent -= 1;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions ?? {};
    this.rate = o.rate ?? 16000;
    this.mulaw = o.encoding === 'mulaw';
    this.step = sampleRate / this.rate; // input samples per output sample
    this.frame = new Int16Array(Math.round(this.rate / 50));
    this.filled = 0;
    this.pos = 0; // fractional read position into the (virtual) input stream
    this.prev = 0;
    this.running = true;
    this.port.onmessage = (e) => { if (e.data === 'stop') this.running = false; };
  }

  push(value) {
    const v = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    if (this.filled === this.frame.length) {
      let out;
      if (this.mulaw) {
        out = new Uint8Array(this.frame.length);
        for (let i = 0; i < this.frame.length; i++) out[i] = muLaw(this.frame[i]);
      } else {
        out = new Int16Array(this.frame); // host order is little-endian on every target
      }
      this.port.postMessage(out.buffer, [out.buffer]);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0]?.[0];
    if (!input) return this.running;
    if (this.step === 1) {
      for (let i = 0; i < input.length; i++) this.push(input[i]);
      return this.running;
    }
    // Linear interpolation between the previous block's last sample and this block.
    const width = Math.max(1, Math.floor(this.step));
    while (this.pos < input.length) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i === 0 ? this.prev : input[i - 1];
      const b = input[i];
      let v = a + (b - a) * frac;
      if (width > 1) { // a crude anti-alias: the mean of the samples this one stands for
        let sum = 0;
        let n = 0;
        for (let k = Math.max(0, i - width + 1); k <= i; k++) { sum += input[k]; n++; }
        v = sum / n;
      }
      this.push(v);
      this.pos += this.step;
    }
    this.pos -= input.length;
    this.prev = input[input.length - 1];
    return this.running;
  }
}

registerProcessor('voicegw-capture', CaptureProcessor);
