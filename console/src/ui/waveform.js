// The recording as a waveform (caller above, agent below) that plays and seeks with the
// page's <audio> element: click or drag to seek; as a slider, arrow keys move 1 s, Page keys
// 10 s. Transcript lines are ticks on the time axis.
import { fmtClock } from '../dom.js';

function css(el, name, fallback) {
  return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
}

export class Waveform {
  constructor(canvas, audio, wav, marks = []) {
    this.canvas = canvas;
    this.audio = audio;
    this.wav = wav;
    this.marks = marks; // [{at, role}]
    this.peaks = null;
    canvas.tabIndex = 0;
    canvas.setAttribute('role', 'slider');
    canvas.setAttribute('aria-label', 'Recording position (caller above, agent below)');
    canvas.setAttribute('aria-valuemin', '0');
    canvas.setAttribute('aria-valuemax', String(Math.round(wav.duration)));
    const seekAt = (event) => {
      const r = canvas.getBoundingClientRect();
      const x = Math.min(Math.max(event.clientX - r.left, 0), r.width);
      this.seek((x / r.width) * this.wav.duration);
    };
    canvas.addEventListener('pointerdown', (event) => {
      seekAt(event);
      canvas.setPointerCapture(event.pointerId);
      const move = (e) => seekAt(e);
      canvas.addEventListener('pointermove', move);
      canvas.addEventListener('pointerup', () => canvas.removeEventListener('pointermove', move), { once: true });
    });
    canvas.addEventListener('keydown', (event) => {
      const step = { ArrowLeft: -1, ArrowRight: 1, PageDown: -10, PageUp: 10 }[event.key];
      if (event.key === 'Home') this.seek(0);
      else if (event.key === 'End') this.seek(this.wav.duration);
      else if (step === undefined) return;
      else this.seek(this.audio.currentTime + step);
      event.preventDefault();
    });
    for (const type of ['timeupdate', 'seeked', 'play', 'pause']) audio.addEventListener(type, () => this.draw());
    this.resize = () => { this.peaks = null; this.draw(); };
    window.addEventListener('resize', this.resize);
    this.frame = () => {
      this.draw();
      if (!this.audio.paused) this.raf = requestAnimationFrame(this.frame);
    };
    audio.addEventListener('play', () => { this.raf = requestAnimationFrame(this.frame); });
    this.draw();
  }

  seek(seconds) {
    this.audio.currentTime = Math.min(Math.max(seconds, 0), this.wav.duration);
    this.draw();
  }

  computePeaks(width) {
    const per = Math.max(1, Math.floor(this.wav.frames / width));
    const out = { caller: new Float32Array(width), agent: new Float32Array(width) };
    for (const side of ['caller', 'agent']) {
      const pcm = this.wav[side];
      for (let x = 0; x < width; x++) {
        let peak = 0;
        const end = Math.min(pcm.length, (x + 1) * per);
        for (let i = x * per; i < end; i++) {
          const a = Math.abs(pcm[i]);
          if (a > peak) peak = a;
        }
        out[side][x] = peak / 32768;
      }
    }
    return out;
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr));
    const hgt = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== hgt) { c.width = w; c.height = hgt; this.peaks = null; }
    if (!this.peaks) this.peaks = this.computePeaks(w);
    const g = c.getContext('2d');
    const callerColor = css(c, '--caller', '#2563eb');
    const agentColor = css(c, '--agent', '#059669');
    const played = this.audio.currentTime / this.wav.duration;
    g.clearRect(0, 0, w, hgt);
    const mid = hgt / 2;
    const half = mid - 4 * dpr;
    for (let x = 0; x < w; x++) {
      const dim = x / w > played;
      g.globalAlpha = dim ? 0.45 : 1;
      g.fillStyle = callerColor;
      const a = Math.max(1, this.peaks.caller[x] * half);
      g.fillRect(x, mid - 2 * dpr - a, 1, a);
      g.fillStyle = agentColor;
      const b = Math.max(1, this.peaks.agent[x] * half);
      g.fillRect(x, mid + 2 * dpr, 1, b);
    }
    g.globalAlpha = 1;
    g.fillStyle = css(c, '--muted', '#6b7280');
    for (const m of this.marks) {
      const x = (m.at / this.wav.duration) * w;
      g.fillRect(x, m.role === 'caller' ? 0 : hgt - 6 * dpr, 1 * dpr, 6 * dpr);
    }
    g.fillStyle = css(c, '--fg', '#111827');
    g.fillRect(played * w - dpr, 0, 2 * dpr, hgt);
    g.font = `${12 * dpr}px system-ui, sans-serif`;
    g.fillText('caller', 4 * dpr, 14 * dpr);
    g.fillText('agent', 4 * dpr, hgt - 6 * dpr);
    c.setAttribute('aria-valuenow', String(Math.round(this.audio.currentTime)));
    c.setAttribute('aria-valuetext', `${fmtClock(this.audio.currentTime)} of ${fmtClock(this.wav.duration)}`);
  }

  dispose() {
    cancelAnimationFrame(this.raf);
    window.removeEventListener('resize', this.resize);
  }
}
