// What the page itself heard: when the microphone and the reply were loud, read from WebAudio
// analysers every 10 ms, and when each `clear` arrived. From these come the figures the
// talk page shows and the browser tests and benchmark read (window.voicegwConsole.talk):
// speech end -> first reply audio, barge-in -> silence, clear -> silence.

export const LOUD_RMS = 0.01; // -40 dBFS
const MERGE_MS = 300; // shorter gaps are pauses inside one utterance or reply

export function rmsOf(analyser, scratch) {
  analyser.getFloatTimeDomainData(scratch);
  let sum = 0;
  for (let i = 0; i < scratch.length; i++) sum += scratch[i] * scratch[i];
  return Math.sqrt(sum / scratch.length);
}

// Loud spans [start, end] (end = the first quiet reading), merging short pauses; an open
// span ends at null.
function spans(changes, mergeMs = MERGE_MS) {
  const out = [];
  for (const { t, loud } of changes) {
    const last = out[out.length - 1];
    if (loud) {
      if (last && last.end !== null && t - last.end < mergeMs) last.end = null;
      else if (!last || last.end !== null) out.push({ start: t, end: null });
    } else if (last && last.end === null) {
      last.end = t;
    }
  }
  return out;
}

export class LevelLog {
  constructor() {
    this.t0 = performance.now();
    this.mic = []; // {t, loud} changes, ms since t0
    this.reply = [];
    this.clears = []; // ms since t0
    this.micLoud = false;
    this.replyLoud = false;
    this.firstQuietAfterClear = [];
    this.cleared = []; // {samples, marks} dropped by each clear
  }

  now() { return performance.now() - this.t0; }

  observe(micRms, replyRms) {
    const t = this.now();
    const mic = micRms > LOUD_RMS;
    const reply = replyRms > LOUD_RMS;
    if (mic !== this.micLoud) { this.micLoud = mic; this.mic.push({ t, loud: mic }); }
    if (reply !== this.replyLoud) { this.replyLoud = reply; this.reply.push({ t, loud: reply }); }
    if (!reply) {
      while (this.firstQuietAfterClear.length < this.clears.length) {
        this.firstQuietAfterClear.push(t);
      }
    }
  }

  clear() { this.clears.push(this.now()); }

  figures() {
    const mic = spans(this.mic);
    const reply = spans(this.reply);
    const speechEndToReply = [];
    for (let i = 0; i < mic.length; i++) {
      const m = mic[i];
      if (m.end === null) continue;
      const nextSpeech = i + 1 < mic.length ? mic[i + 1].start : Infinity;
      if (reply.some((r) => r.start <= m.end && (r.end === null || r.end > m.end))) continue;
      const r = reply.find((s) => s.start >= m.end);
      if (r && r.start < nextSpeech) speechEndToReply.push(r.start - m.end);
    }
    const bargeInToSilence = [];
    const clearToSilence = [];
    // Reply audio heard after the silence while the caller was still talking over it:
    // none, if the clear emptied the queue at once.
    const leakedMs = [];
    this.clears.forEach((c, i) => {
      const quiet = this.firstQuietAfterClear[i];
      if (quiet === undefined) return;
      clearToSilence.push(quiet - c);
      const speech = mic.filter((m) => m.start <= c).pop();
      if (speech && (speech.end === null || speech.end >= c)) {
        bargeInToSilence.push(quiet - speech.start);
        const until = speech.end ?? this.now();
        let loud = 0;
        for (const r of reply) {
          const from = Math.max(r.start, quiet);
          const to = Math.min(r.end ?? this.now(), until);
          if (to > from) loud += to - from;
        }
        leakedMs.push(loud);
      }
    });
    const round = (xs) => xs.map((x) => Math.round(x * 10) / 10);
    return {
      speech_end_to_reply_ms: round(speechEndToReply),
      barge_in_to_silence_ms: round(bargeInToSilence),
      clear_to_silence_ms: round(clearToSilence),
      reply_while_barging_in_ms: round(leakedMs),
      clears: this.clears.length,
      reply_spans: reply.length,
      speech_spans: mic.length,
      cleared: this.cleared,
    };
  }
}
