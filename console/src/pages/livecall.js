// One call in progress: its facts, its transcript as it grows, its tool calls.
import { fmtDuration, fmtMs, h, humanKind } from '../dom.js';
import { Conversation } from '../ui/conversation.js';
import { monitorStream } from '../ui/stream.js';

export default function liveCallPage(view, { sid }) {
  const conversation = new Conversation();
  const facts = h('dl', { class: 'facts', id: 'live-facts' });
  const state = h('p', { class: 'status', role: 'status' }, 'Connecting…');
  let info = null;
  let seenAt = 0;
  let ended = null;

  const drawFacts = () => {
    if (!info) return;
    const duration = ended ? info.duration_s : info.duration_s + (performance.now() - seenAt) / 1000;
    const item = (k, v) => [h('div', {}, h('dt', {}, k), h('dd', {}, v))];
    facts.replaceChildren(
      ...item('Carrier', info.carrier ?? '–'), ...item('Agent', info.agent ?? '–'),
      ...item('Duration', fmtDuration(duration)),
      ...item('Speaking', ended ? '–' : info.speaking ?? 'none'),
      ...item('Interruptions', String(info.interruptions ?? 0)),
      ...item('Last turn latency', fmtMs(info.last_turn_latency_ms)));
  };

  const stop = monitorStream(`/console/api/live/${encodeURIComponent(sid)}`, (event) => {
    if (event.type === 'snapshot' || event.type === 'call') {
      info = event.call;
      seenAt = performance.now();
    }
    if (event.type === 'ended') {
      if (info) info = { ...info, duration_s: info.duration_s + (performance.now() - seenAt) / 1000 };
      ended = event;
      state.replaceChildren(`Call ended: ${humanKind(event.end_kind)}. `,
        h('a', { href: `/console/calls/${encodeURIComponent(sid)}` }, 'Open its record'));
      stop();
    }
    conversation.apply(event);
    drawFacts();
  }, (s) => {
    if (ended) return;
    if (s === 'open') state.textContent = 'Live.';
    else {
      state.replaceChildren('Not live (it may have ended). ',
        h('a', { href: `/console/calls/${encodeURIComponent(sid)}` }, 'Open its record'));
    }
  });
  const tick = setInterval(drawFacts, 1000);
  view.append(h('p', {}, h('a', { href: '/console/live' }, '← Live calls')),
    h('h1', {}, `Live call ${sid}`), state, h('div', { class: 'card' }, facts),
    h('div', { class: 'card' }, conversation.el));
  return () => { stop(); clearInterval(tick); };
}
