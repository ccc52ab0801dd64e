// A call to an agent through the gateway's browser carrier: the same bridge, agent and tools
// as a phone call, and a call record (carrier "browser") at the end.
import { muLawToPcm16 } from './g711.js';
import { VoicePath } from './voice.js';

export const FORMATS = {
  pcm16: { upRate: 16000, upEncoding: 'pcm16', downRate: 24000 },
  mulaw8k: { upRate: 8000, upEncoding: 'mulaw', downRate: 8000 },
};

function socketUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

export class GatewayTalk extends EventTarget {
  constructor(agent, format) {
    super();
    this.agent = agent;
    this.format = FORMATS[format] ? format : 'pcm16';
    this.early = []; // what came before the audio path was ready
    this.voice = null;
    this.callId = null;
    this.marksEchoed = 0;
    this.replyBytes = 0;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  async start() {
    const url = socketUrl(`/browser/media/${encodeURIComponent(this.agent)}`);
    url.searchParams.set('format', this.format);
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    const started = new Promise((resolve, reject) => {
      this.resolveStarted = resolve;
      ws.onerror = () => reject(new Error('the gateway refused the call'));
      ws.onclose = (e) => reject(new Error(`the gateway closed the call (${e.code})`));
    });
    ws.onopen = () => ws.send(JSON.stringify({ event: 'start' }));
    ws.onmessage = (e) => this.receive(e.data);
    const info = await started;
    ws.onclose = (e) => this.closed(e);
    this.callId = info.call_id;
    const f = FORMATS[this.format];
    this.voice = new VoicePath({
      upRate: f.upRate, upEncoding: f.upEncoding,
      downRate: info.format?.sample_rate ?? f.downRate,
    });
    this.voice.onFrame = (buf) => { if (ws.readyState === WebSocket.OPEN) ws.send(buf); };
    this.voice.onMarkPlayed = (name) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      this.marksEchoed += 1;
      ws.send(JSON.stringify({ event: 'mark', name }));
    };
    await this.voice.start();
    for (const data of this.early.splice(0)) this.receive(data);
    this.emit('started', info);
    return info;
  }

  receive(data) {
    if (typeof data !== 'string') {
      if (!this.voice) { this.early.push(data); return; }
      this.replyBytes += data.byteLength;
      const pcm = this.format === 'mulaw8k'
        ? muLawToPcm16(new Uint8Array(data))
        : new Int16Array(data, 0, data.byteLength >> 1);
      this.voice.play(pcm);
      return;
    }
    let m;
    try { m = JSON.parse(data); } catch { return; }
    switch (m.event) {
      case 'started':
        this.resolveStarted?.(m);
        break;
      case 'mark':
        if (!this.voice) this.early.push(data);
        else this.voice.mark(m.name);
        break;
      case 'clear':
        if (!this.voice) this.early.length = 0;
        else this.voice.clear();
        this.emit('clear', {});
        break;
      case 'monitor':
        this.emit('monitor', m.data);
        break;
      case 'ended':
        this.endedWith = m;
        this.emit('ended', m);
        break;
      default:
        break;
    }
  }

  closed(event) {
    if (!this.endedWith) this.emit('ended', { end_kind: null, end_reason: `closed (${event.code})` });
    this.voice?.stop();
  }

  dtmf(digit) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ event: 'dtmf', digit }));
  }

  async hangUp() {
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      const closed = new Promise((resolve) => ws.addEventListener('close', resolve, { once: true }));
      ws.send(JSON.stringify({ event: 'stop' }));
      await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
      if (ws.readyState !== WebSocket.CLOSED) ws.close(1000);
    }
    await this.voice?.stop();
  }
}
