// A call's transcript and tool calls as they happen, from monitor events (the talk page and a
// live call's page) or from a call record (the call's page renders the same lines).
import { fmtClock, fmtMs, h } from '../dom.js';

const ROLE = { caller: 'Caller', agent: 'Agent' };

export function lineContent(line) {
  const body = h('span', { class: 'text' });
  if (line.interrupted && typeof line.heard === 'string' && line.heard !== line.text) {
    // What the caller actually heard of a reply they talked over, then the rest, struck out.
    const heard = line.heard;
    const rest = line.text.startsWith(heard) ? line.text.slice(heard.length) : line.text;
    body.append(
      heard ? h('span', { class: 'heard' }, heard) : '',
      h('del', { class: 'unheard' }, h('span', { class: 'visually-hidden' }, 'not heard: '), rest),
      ' ',
      h('span', { class: 'tag' }, heard ? 'interrupted: the caller heard only the first part'
        : 'interrupted: the caller heard none of it'),
    );
  } else {
    body.append(line.text);
    if (line.interrupted) body.append(' ', h('span', { class: 'tag' }, 'interrupted'));
  }
  return body;
}

export function lineItem(line) {
  const at = line.at ?? line.at_s ?? 0;
  return h('li', { class: `line ${line.role}${line.interrupted ? ' interrupted' : ''}` },
    h('span', { class: 'who' }, ROLE[line.role] ?? line.role),
    h('span', { class: 'at' }, fmtClock(at)),
    lineContent(line));
}

function json(value) {
  return JSON.stringify(value ?? {}, null, 1).replace(/\n\s*/g, ' ');
}

export function toolItem(tool) {
  const li = h('li', { class: 'tool' });
  fillTool(li, tool);
  return li;
}

function fillTool(li, tool) {
  let outcome;
  if (!tool.outcome) outcome = h('span', { class: 'pending' }, 'running…');
  else if (tool.outcome === 'ok') outcome = h('code', { class: 'result' }, `→ ${json(tool.result)}`);
  else if (tool.outcome === 'cancelled') outcome = h('span', { class: 'tag' }, 'cancelled');
  else outcome = h('span', { class: 'error-text' }, `error: ${tool.error ?? 'failed'}`);
  li.className = `tool ${tool.outcome ?? 'running'}`;
  li.replaceChildren(
    h('code', { class: 'call' }, `${tool.name}(${json(tool.args)})`), ' ', outcome,
    tool.latency_ms !== undefined && tool.latency_ms !== null
      ? h('span', { class: 'at' }, fmtMs(tool.latency_ms)) : '');
}

export class Conversation {
  constructor({ title = 'Transcript' } = {}) {
    this.lines = new Map();
    this.tools = new Map();
    this.list = h('ol', { class: 'transcript', 'aria-live': 'polite', 'aria-relevant': 'additions text' });
    this.toolList = h('ul', { class: 'tools' });
    this.empty = h('p', { class: 'muted' }, 'Nothing said yet.');
    this.noTools = h('p', { class: 'muted' }, 'No tool calls yet.');
    this.el = h('div', { class: 'conversation' },
      h('section', { 'aria-labelledby': 'transcript-title' },
        h('h2', { id: 'transcript-title' }, title), this.empty, this.list),
      h('section', { 'aria-labelledby': 'tools-title' },
        h('h2', { id: 'tools-title' }, 'Tool calls'), this.noTools, this.toolList));
  }

  reset() {
    this.lines.clear();
    this.tools.clear();
    this.list.replaceChildren();
    this.toolList.replaceChildren();
    this.empty.hidden = false;
    this.noTools.hidden = false;
  }

  line(event, index) {
    const key = event.line ?? index;
    const item = lineItem(event);
    const old = this.lines.get(key);
    if (old) old.replaceWith(item);
    else this.list.append(item);
    this.lines.set(key, item);
    this.empty.hidden = true;
  }

  tool(event) {
    const old = this.tools.get(event.id);
    const merged = { ...(old?.data ?? {}), ...event };
    if (event.type === 'tool_call') delete merged.outcome;
    if (old) fillTool(old.li, merged);
    else {
      const li = toolItem(merged);
      this.toolList.append(li);
      this.tools.set(event.id, { li, data: merged });
      this.noTools.hidden = true;
      return;
    }
    old.data = merged;
  }

  apply(event) {
    switch (event.type) {
      case 'snapshot':
        this.reset();
        (event.transcript ?? []).forEach((line, i) => this.line(line, i));
        for (const tool of event.tools ?? []) this.tool(tool);
        break;
      case 'transcript':
        this.line(event);
        break;
      case 'tool_call':
      case 'tool_result':
        this.tool(event);
        break;
      default:
        break;
    }
  }
}
