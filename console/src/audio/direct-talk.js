// "Direct to the model": the gateway mints a one-use ephemeral token locked to the agent's
// setup (POST /v1/tokens) and the browser talks to the Live API itself with it. The API key
// never reaches the page, and neither the gateway's bridge nor its tools are in the path:
// a tool call the model makes is answered with an error saying so.
import { postJSON } from '../api.js';
import { VoicePath } from './voice.js';

function base64Of(buffer) {
  const bytes = new Uint8Array(buffer);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function pcmOf(b64) {
  const s = atob(b64);
  const out = new Int16Array(s.length >> 1);
  for (let i = 0; i < out.length; i++) {
    const v = s.charCodeAt(2 * i) | (s.charCodeAt(2 * i + 1) << 8);
    out[i] = v >= 0x8000 ? v - 0x10000 : v;
  }
  return out;
}

export class DirectTalk extends EventTarget {
  constructor(agent) {
    super();
    this.agent = agent;
    this.voice = null;
    this.line = -1;
    this.lastRole = null;
    this.t0 = performance.now();
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  async start() {
    const token = await postJSON('/v1/tokens', {
      agent: this.agent, uses: 1, expire_s: 1800, new_session_expire_s: 60,
    });
    const url = new URL(token.ws_url);
    if (!url.searchParams.has('access_token')) url.searchParams.set('access_token', token.token);
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    const ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      ws.onerror = () => reject(new Error('the Live API refused the connection'));
      ws.onclose = (e) => reject(new Error(`the Live API closed the connection (${e.code} ${e.reason})`));
    });
    const model = token.model?.startsWith('models/') ? token.model : `models/${token.model}`;
    ws.onopen = () => ws.send(JSON.stringify({ setup: { model } }));
    ws.onmessage = (e) => this.receive(e.data);
    await ready;
    ws.onclose = (e) => {
      this.emit('ended', { end_kind: null, end_reason: `closed (${e.code}${e.reason ? ` ${e.reason}` : ''})` });
      this.voice?.stop();
    };
    this.voice = new VoicePath({ upRate: 16000, upEncoding: 'pcm16', downRate: 24000 });
    this.voice.onFrame = (buf) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({
        realtimeInput: { audio: { data: base64Of(buf), mimeType: 'audio/pcm;rate=16000' } },
      }));
    };
    await this.voice.start();
    const info = { call_id: null, agent: this.agent, model: token.model, expires: token.expire_time };
    this.emit('started', info);
    return info;
  }

  transcript(role, text) {
    if (!text) return;
    if (role !== this.lastRole) {
      this.line += 1;
      this.lastRole = role;
      this.lineText = '';
    }
    this.lineText += text;
    this.emit('monitor', {
      type: 'transcript', line: this.line, role, text: this.lineText.trimStart(),
      at: (performance.now() - this.t0) / 1000, interrupted: false, heard: null,
    });
  }

  receive(data) {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (m.setupComplete !== undefined) { this.resolveReady?.(); return; }
    const content = m.serverContent;
    if (content) {
      for (const part of content.modelTurn?.parts ?? []) {
        if (part.inlineData?.data && this.voice) this.voice.play(pcmOf(part.inlineData.data));
      }
      if (content.interrupted) {
        this.voice?.clear();
        this.emit('clear', {});
      }
      this.transcript('caller', content.inputTranscription?.text);
      this.transcript('agent', content.outputTranscription?.text);
    }
    if (m.toolCall) {
      const responses = [];
      for (const call of m.toolCall.functionCalls ?? []) {
        this.emit('monitor', {
          type: 'tool_call', id: call.id, name: call.name, args: call.args ?? {},
          at: (performance.now() - this.t0) / 1000,
        });
        const error = 'not run: direct to the model bypasses the gateway\'s tools';
        this.emit('monitor', {
          type: 'tool_result', id: call.id, outcome: 'error', result: null, error, latency_ms: 0,
        });
        responses.push({ id: call.id, name: call.name, response: { error } });
      }
      this.ws.send(JSON.stringify({ toolResponse: { functionResponses: responses } }));
    }
    if (m.goAway) this.emit('status', `The Live API will close this session in ${m.goAway.timeLeft}.`);
  }

  dtmf() {}

  async hangUp() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    await this.voice?.stop();
  }
}
