// One call's record: facts, the stereo recording as a waveform to play and seek, the
// transcript aligned to it (click a line to hear it), tool calls, and plots of response
// latency per turn and of how fast each barge-in silenced the reply.
import { ApiError, getJSON } from '../api.js';
import { fmtClock, fmtDuration, fmtWhen, h, humanKind } from '../dom.js';
import { lineContent, toolItem } from '../ui/conversation.js';
import { barChart } from '../ui/plot.js';
import { alignTurns, bargeIns, parseWav } from '../ui/wav.js';
import { Waveform } from '../ui/waveform.js';

function ended(r) {
  const kind = humanKind(r.end_kind);
  return r.end_reason && r.end_reason !== kind ? `${kind} (${r.end_reason})` : kind;
}

function facts(r) {
  const item = (k, v) => [h('div', {}, h('dt', {}, k), h('dd', {}, v ?? '–'))];
  return h('dl', { class: 'facts' },
    ...item('Carrier', r.carrier), ...item('Agent', r.agent),
    ...item('Caller', r.caller), ...item('Dialled', r.dialled),
    ...item('Started', fmtWhen(r.started_at)),
    ...item('Duration', fmtDuration(r.duration_s)),
    ...item('Ended', r.ended_at ? ended(r) : 'in progress'),
    ...item('Interruptions', String(r.interruptions ?? 0)),
    ...item('Live reconnects', String(r.live_reconnects ?? 0)),
    ...item('Tokens', r.tokens ? `${r.tokens.total} (prompt ${r.tokens.prompt}, response ${r.tokens.response})` : '–'));
}

function chartFigure(id, title, values, labels, color, describe) {
  const canvas = h('canvas', { id, class: 'chart', role: 'img', 'aria-label': describe });
  return {
    el: h('figure', { class: 'chart-figure' }, h('figcaption', {}, title), canvas,
      h('p', { class: 'visually-hidden' }, describe)),
    draw: () => barChart(canvas, { values, labels, color }),
  };
}

export default async function callPage(view, { sid }) {
  let record;
  try {
    record = await getJSON(`/console/api/calls/${encodeURIComponent(sid)}`);
  } catch (err) {
    const text = err instanceof ApiError && err.status === 404 ? `No call ${sid}.` : `Could not load the call: ${err.message}`;
    view.append(h('p', {}, h('a', { href: '/console/calls' }, '← Calls')), h('p', { class: 'error', role: 'alert' }, text));
    return undefined;
  }
  const turns = record.turns ?? [];
  const player = h('section', { class: 'card', 'aria-labelledby': 'rec-title' },
    h('h2', { id: 'rec-title' }, 'Recording'));
  const lines = h('ol', { class: 'transcript aligned', id: 'call-transcript' });
  const toolList = h('ul', { class: 'tools' }, (record.tool_calls ?? []).map(toolItem));
  const charts = h('div', { class: 'charts' });
  view.append(
    h('p', {}, h('a', { href: '/console/calls' }, '← Calls')),
    h('h1', {}, `Call ${record.call_sid}`),
    h('div', { class: 'card' }, facts(record)),
    player,
    h('div', { class: 'card conversation' },
      h('section', { 'aria-labelledby': 'transcript-title' },
        h('h2', { id: 'transcript-title' }, 'Transcript'),
        turns.length ? lines : h('p', { class: 'muted' }, 'Nothing was said.')),
      h('section', { 'aria-labelledby': 'tools-title' },
        h('h2', { id: 'tools-title' }, 'Tool calls'),
        record.tool_calls?.length ? toolList : h('p', { class: 'muted' }, 'No tool calls.'))),
    h('section', { class: 'card', 'aria-labelledby': 'charts-title' },
      h('h2', { id: 'charts-title' }, 'Turn-taking'), charts));

  let audio = null;
  let waveform = null;
  // Times in the recording: the record's own until the recording is read (alignTurns).
  const starts = turns.map((t) => t.at_s);
  const items = turns.map((t, i) => {
    const button = h('button', { type: 'button', class: 'line-play' }, fmtClock(t.at_s));
    const li = h('li', { class: `line ${t.role}${t.interrupted ? ' interrupted' : ''}`, 'data-at': t.at_s },
      h('span', { class: 'who' }, t.role === 'caller' ? 'Caller' : 'Agent'), button, lineContent(t));
    button.setAttribute('aria-label', `Play from ${fmtClock(t.at_s)}`);
    button.addEventListener('click', () => {
      if (!audio) return;
      audio.currentTime = starts[i];
      audio.play().catch(() => {});
    });
    return li;
  });
  lines.append(...items);
  const placeLines = () => items.forEach((li, i) => {
    const button = li.querySelector('.line-play');
    button.textContent = fmtClock(starts[i]);
    button.setAttribute('aria-label', `Play from ${fmtClock(starts[i])}`);
    li.dataset.at = String(starts[i]);
  });
  const highlight = () => {
    const now = audio.currentTime;
    let current = -1;
    starts.forEach((at, i) => { if (at <= now) current = i; });
    items.forEach((li, i) => li.classList.toggle('current', i === current && !audio.paused));
  };

  const latencies = record.response_latency_ms ?? [];
  const latencyChart = chartFigure('latency-chart', 'Response latency per turn (end of caller speech → first reply audio)',
    latencies, latencies.map((_, i) => `turn ${i + 1}`), '--accent',
    latencies.length ? `Response latency per turn: ${latencies.map((v) => `${Math.round(v)} ms`).join(', ')}.` : 'No turns measured.');
  charts.append(latencyChart.el);
  const drawn = [latencyChart];
  const redraw = () => { for (const c of drawn) c.draw(); };
  window.addEventListener('resize', redraw);
  redraw();

  if (!record.recording) {
    player.append(h('p', { class: 'muted' }, 'This call was not recorded.'));
    return () => window.removeEventListener('resize', redraw);
  }
  audio = h('audio', { controls: true, preload: 'auto', src: record.recording, id: 'call-audio' });
  const canvas = h('canvas', { class: 'waveform', id: 'waveform' });
  const position = h('p', { class: 'muted', id: 'position', 'aria-live': 'off' });
  player.append(canvas, audio, position);
  audio.addEventListener('timeupdate', () => {
    position.textContent = `${fmtClock(audio.currentTime)} / ${fmtClock(audio.duration || 0)}`;
    highlight();
  });
  audio.addEventListener('pause', highlight);

  try {
    const response = await fetch(record.recording, { credentials: 'same-origin' });
    if (!response.ok) throw new ApiError(response.status, `${response.status} ${response.statusText}`);
    const wav = parseWav(await response.arrayBuffer());
    alignTurns(wav, turns).forEach((at, i) => { starts[i] = at; });
    placeLines();
    waveform = new Waveform(canvas, audio, wav, turns.map((t, i) => ({ at: starts[i], role: t.role })));
    const reactions = bargeIns(wav, turns);
    const bargeChart = chartFigure('barge-chart', 'Barge-in reactions (caller starts talking → reply silent, from the recording)',
      reactions.map((r) => r.stop_ms), reactions.map((r) => fmtClock(r.onset_s)), '--agent',
      reactions.length ? `Barge-ins: ${reactions.map((r) => `at ${fmtClock(r.onset_s)} the reply stopped ${r.stop_ms} ms after the caller began`).join('; ')}.`
        : 'No barge-ins in this call.');
    charts.append(bargeChart.el);
    drawn.push(bargeChart);
    redraw(); // the grid has two columns now
  } catch (err) {
    player.append(h('p', { class: 'error' }, `Could not draw the recording: ${err.message}`));
  }
  return () => {
    window.removeEventListener('resize', redraw);
    waveform?.dispose();
    audio.pause();
  };
}
