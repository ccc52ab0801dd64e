// Building DOM nodes without innerHTML: text is always text, never markup, and the strict
// CSP forbids style attributes, so presentation stays in style.css (classes only).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'style') {
      throw new Error('inline styles are refused by the CSP; use a class');
    } else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function announce(text) {
  const el = document.getElementById('announce');
  if (el) el.textContent = text;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

export function fmtMs(ms) {
  return ms === null || ms === undefined ? '–' : `${Math.round(ms)} ms`;
}

export function fmtWhen(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function fmtClock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, '0')}`;
}

export const endKinds = [
  'caller_hung_up', 'caller_disconnected', 'agent_ended', 'transferred', 'live_unavailable',
  'protocol_error', 'refused', 'start_timeout', 'unknown_agent', 'model_stalled', 'shutdown',
  'internal_error',
];

export function humanKind(kind) {
  return kind ? kind.replaceAll('_', ' ') : '–';
}
