// A call recording (RIFF WAVE, PCM16, caller left and agent right) read for drawing and
// analysis; playing it is the <audio> element's job.

export function parseWav(buffer) {
  const v = new DataView(buffer);
  const tag = (o) => String.fromCharCode(v.getUint8(o), v.getUint8(o + 1), v.getUint8(o + 2), v.getUint8(o + 3));
  if (buffer.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('not a WAV file');
  let fmt = null;
  let off = 12;
  while (off + 8 <= buffer.byteLength) {
    const id = tag(off);
    const size = v.getUint32(off + 4, true);
    const body = off + 8;
    if (id === 'fmt ') {
      fmt = { format: v.getUint16(body, true), channels: v.getUint16(body + 2, true),
        rate: v.getUint32(body + 4, true), bits: v.getUint16(body + 14, true) };
    } else if (id === 'data') {
      if (!fmt || fmt.format !== 1 || fmt.bits !== 16) throw new Error('not 16-bit PCM');
      const bytes = Math.min(size, buffer.byteLength - body) & ~1;
      const samples = new Int16Array(buffer.slice(body, body + bytes));
      const frames = Math.floor(samples.length / fmt.channels);
      const channel = (c) => {
        const out = new Int16Array(frames);
        for (let i = 0; i < frames; i++) out[i] = samples[i * fmt.channels + c];
        return out;
      };
      const left = channel(0);
      const right = fmt.channels > 1 ? channel(1) : left;
      return { rate: fmt.rate, frames, duration: frames / fmt.rate, caller: left, agent: right };
    }
    off = body + size + (size & 1);
  }
  throw new Error('no audio in the WAV file');
}

// Per 20 ms frame: is there sound (peak above -40 dBFS)?
export function activity(pcm, rate) {
  const n = Math.round(rate / 50);
  const frames = Math.floor(pcm.length / n);
  const out = new Uint8Array(frames);
  for (let f = 0; f < frames; f++) {
    let peak = 0;
    for (let i = f * n; i < (f + 1) * n; i++) {
      const a = Math.abs(pcm[i]);
      if (a > peak) peak = a;
    }
    out[f] = peak > 330 ? 1 : 0;
  }
  return out;
}

// How fast each interrupted reply stopped, read from the recording itself: from the caller's
// speech onset (3 loud frames in a row while the agent is talking) to the agent's channel
// falling silent (10 quiet frames in a row), searched from the start of each interrupted
// agent line. The recording stops the reply where the caller stopped hearing it.
export function bargeIns(wav, turns) {
  const caller = activity(wav.caller, wav.rate);
  const agent = activity(wav.agent, wav.rate);
  const out = [];
  turns.forEach((t, index) => {
    if (t.role !== 'agent' || !t.interrupted) return;
    const from = Math.floor((t.at_s ?? 0) * 50);
    const to = Math.min(caller.length - 2, from + 50 * 30);
    let onset = -1;
    for (let f = Math.max(0, from); f < to; f++) {
      if (caller[f] && caller[f + 1] && caller[f + 2] && (agent[f] || agent[f - 1])) { onset = f; break; }
    }
    if (onset < 0) return;
    for (let f = onset; f < agent.length - 10; f++) {
      let quiet = true;
      for (let k = 0; k < 10; k++) if (agent[f + k]) { quiet = false; break; }
      if (quiet) { out.push({ index, onset_s: onset / 50, stop_ms: (f - onset) * 20 }); return; }
    }
  });
  return out;
}

// Where each transcript line is heard in the recording. A line's `at_s` is when the gateway
// began it: a caller line once the speech was transcribed (after it ended), an agent line as
// the reply began. So a caller line moves back to the start of the speech it ended (pauses
// under half a second inside it), an agent line to the reply's first sound near its time.
export function alignTurns(wav, turns) {
  const caller = activity(wav.caller, wav.rate);
  const agent = activity(wav.agent, wav.rate);
  return turns.map((t) => {
    const at = Math.round((t.at_s ?? 0) * 50);
    if (t.role === 'caller') {
      let end = Math.min(at, caller.length - 1);
      const stop = Math.max(0, at - 50 * 15);
      while (end > stop && !caller[end]) end--;
      if (!caller[end]) return t.at_s;
      let start = end;
      for (let f = end; f >= 0 && end - f < 50 * 30; f--) {
        if (caller[f]) start = f;
        else if (start - f > 25) break;
      }
      return start / 50;
    }
    for (let f = Math.max(0, at - 50); f < Math.min(agent.length, at + 150); f++) {
      if (agent[f]) return f / 50;
    }
    return t.at_s;
  });
}
