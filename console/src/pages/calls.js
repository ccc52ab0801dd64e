// Call records: search by date range, agent, carrier, how it ended and transcript text;
// newest first, paged. The filters live in the address, so a search can be linked and the
// back button returns to it.
import { getJSON, query } from '../api.js';
import { endKinds, fmtDuration, fmtWhen, h, humanKind } from '../dom.js';
import { navigate } from '../router.js';

const PER_PAGE = 25;
const CARRIERS = ['browser', 'twilio', 'telnyx', 'plivo', 'vonage', 'exotel', 'jambonz',
  'signalwire', 'asterisk', 'audiosocket'];

// <input type=datetime-local> speaks local time without a zone; the API takes ISO instants.
const toIso = (local) => (local ? new Date(local).toISOString() : '');
function toLocal(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function select(id, label, options, value) {
  return [h('label', { for: id }, label),
    h('select', { id, name: id },
      h('option', { value: '' }, 'any'),
      options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)))];
}

export default async function callsPage(view, { query: params }) {
  const agents = await getJSON('/console/api/agents').catch(() => []);
  const p = Object.fromEntries(params.entries());
  const page = Math.max(1, Number(p.page) || 1);

  const form = h('form', { class: 'card search', role: 'search', id: 'call-search' },
    h('div', { class: 'fields' },
      h('div', {}, h('label', { for: 'q' }, 'Text said'),
        h('input', { id: 'q', name: 'q', type: 'search', value: p.q ?? '', placeholder: 'words in the transcript' })),
      h('div', {}, h('label', { for: 'since' }, 'From'),
        h('input', { id: 'since', name: 'since', type: 'datetime-local', value: toLocal(p.since) })),
      h('div', {}, h('label', { for: 'until' }, 'Until'),
        h('input', { id: 'until', name: 'until', type: 'datetime-local', value: toLocal(p.until) })),
      h('div', {}, ...select('agent', 'Agent', agents.map((a) => [a.name, a.name]), p.agent)),
      h('div', {}, ...select('carrier', 'Carrier', CARRIERS.map((c) => [c, c]), p.carrier)),
      h('div', {}, ...select('end_kind', 'Ended', endKinds.map((k) => [k, humanKind(k)]), p.end_kind))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Search'),
      h('a', { href: '/console/calls', class: 'button quiet' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const f = new FormData(form);
    navigate(`/console/calls${query({
      q: f.get('q'), since: toIso(f.get('since')), until: toIso(f.get('until')),
      agent: f.get('agent'), carrier: f.get('carrier'), end_kind: f.get('end_kind'),
    })}`);
  });

  const results = h('div', { class: 'card', id: 'call-results', 'aria-live': 'polite' }, 'Searching…');
  view.append(h('h1', {}, 'Calls'), form, results);

  const filters = { since: p.since, until: p.until, agent: p.agent, carrier: p.carrier,
    end_kind: p.end_kind, q: p.q };
  let data;
  try {
    data = await getJSON(`/console/api/calls${query({ ...filters, page, per_page: PER_PAGE })}`);
  } catch (err) {
    results.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not search: ${err.message}`));
    return undefined;
  }
  const pages = Math.max(1, Math.ceil(data.total / data.per_page));
  const link = (n, text, rel) => h('a', {
    href: `/console/calls${query({ ...filters, page: n })}`, rel, class: 'button quiet',
  }, text);
  results.replaceChildren(
    h('p', { class: 'muted' }, `${data.total} call${data.total === 1 ? '' : 's'}; page ${data.page} of ${pages}.`),
    data.calls.length === 0 ? h('p', {}, 'No calls match.') : h('table', { class: 'calls' },
      h('caption', { class: 'visually-hidden' }, 'Call records, newest first'),
      h('thead', {}, h('tr', {}, ['Started', 'Call', 'Carrier', 'Agent', 'Caller', 'Duration', 'Turns',
        'Interruptions', 'Ended'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, data.calls.map((c) => h('tr', {},
        h('td', {}, fmtWhen(c.started_at)),
        h('td', {}, h('a', { href: `/console/calls/${encodeURIComponent(c.call_sid)}` }, c.call_sid)),
        h('td', {}, c.carrier ?? '–'),
        h('td', {}, c.agent ?? '–'),
        h('td', { class: 'number' }, c.caller ?? '–'),
        h('td', { class: 'num' }, fmtDuration(c.duration_s)),
        h('td', { class: 'num' }, String(c.turns ?? '–')),
        h('td', { class: 'num' }, String(c.interruptions ?? '–')),
        h('td', {}, c.ended ? humanKind(c.end_kind) : h('span', { class: 'tag' }, 'in progress')))))),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      data.page > 1 ? link(data.page - 1, '← Newer', 'prev') : '',
      data.page < pages ? link(data.page + 1, 'Older →', 'next') : ''));
  return undefined;
}
