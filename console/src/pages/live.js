// Calls in progress, updated as they change (SSE /console/api/live); durations tick here.
import { fmtDuration, fmtMs, h, humanKind } from '../dom.js';
import { monitorStream } from '../ui/stream.js';

const SPEAKING = { none: 'nobody', caller: 'caller', agent: 'agent', both: 'both' };

export default function livePage(view) {
  const calls = new Map(); // call_id -> {info, seenAt, ended}
  const body = h('tbody', {});
  const empty = h('p', { class: 'muted', id: 'no-live-calls' }, 'No calls in progress.');
  const state = h('p', { class: 'status', role: 'status' }, 'Connecting…');
  const table = h('table', { class: 'calls live', id: 'live-calls' },
    h('caption', { class: 'visually-hidden' }, 'Calls in progress'),
    h('thead', {}, h('tr', {},
      ['Call', 'Carrier', 'Agent', 'Duration', 'Speaking', 'Interruptions', 'Last turn latency']
        .map((c) => h('th', { scope: 'col' }, c)))),
    body);

  const row = (id) => {
    const c = calls.get(id);
    const info = c.info;
    const duration = c.ended ? info.duration_s : info.duration_s + (performance.now() - c.seenAt) / 1000;
    const speaking = info.speaking ?? 'none';
    return h('tr', { 'data-call': id, class: c.ended ? 'ended' : '' },
      h('td', {}, h('a', { href: `/console/live/${encodeURIComponent(id)}` }, id)),
      h('td', {}, info.carrier ?? '–'),
      h('td', {}, info.agent ?? '–'),
      h('td', { class: 'num duration' }, fmtDuration(duration)),
      h('td', {}, c.ended
        ? h('span', { class: 'tag' }, `ended: ${humanKind(c.ended)}`)
        : h('span', { class: `speaking ${speaking}` }, SPEAKING[speaking] ?? speaking)),
      h('td', { class: 'num' }, String(info.interruptions ?? 0)),
      h('td', { class: 'num' }, fmtMs(info.last_turn_latency_ms)));
  };
  const draw = () => {
    const ids = [...calls.keys()].sort(
      (a, b) => (calls.get(b).info.started_at ?? 0) - (calls.get(a).info.started_at ?? 0));
    body.replaceChildren(...ids.map(row));
    empty.hidden = ids.length > 0;
    table.hidden = ids.length === 0;
  };
  const put = (info) => {
    calls.set(info.call_id, { info, seenAt: performance.now(), ended: null });
  };

  const stop = monitorStream('/console/api/live', (event) => {
    if (event.type === 'snapshot') {
      calls.clear();
      for (const info of event.calls ?? []) put(info);
    } else if (event.type === 'call') {
      put(event.call);
    } else if (event.type === 'ended') {
      const c = calls.get(event.call_id);
      if (c) {
        c.info = { ...c.info, duration_s: c.info.duration_s + (performance.now() - c.seenAt) / 1000 };
        c.ended = event.end_kind ?? 'ended';
        // An ended call stays a moment so the operator sees how it ended.
        setTimeout(() => { if (calls.get(event.call_id) === c) { calls.delete(event.call_id); draw(); } }, 5000);
      }
    }
    draw();
  }, (s) => {
    state.textContent = s === 'open' ? 'Live: updates as calls change.' : 'Reconnecting…';
  });
  const tick = setInterval(draw, 1000);

  view.append(h('h1', {}, 'Live calls'), state, h('div', { class: 'card' }, empty, table));
  draw();
  return () => { stop(); clearInterval(tick); };
}
