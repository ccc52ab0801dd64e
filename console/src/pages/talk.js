// Talk to an agent from the browser: through the gateway (its browser carrier: the same
// bridge, agent and tools as a phone call) or, clearly marked, straight to the model with an
// ephemeral token (no gateway tools).
import { getJSON } from '../api.js';
import { DirectTalk } from '../audio/direct-talk.js';
import { GatewayTalk } from '../audio/gateway-talk.js';
import { JITTER_MS } from '../audio/voice.js';
import { announce, h } from '../dom.js';
import { Conversation } from '../ui/conversation.js';

// The browser tests and the latency benchmark read the page's own measurements here.
const hook = (window.voicegwConsole ??= {});

function radio(name, value, label, hint, checked = false) {
  const id = `${name}-${value}`;
  return h('div', { class: 'choice' },
    h('input', { type: 'radio', name, value, id, checked }),
    h('label', { for: id }, label, hint ? h('span', { class: 'hint' }, hint) : ''));
}

export default async function talkPage(view) {
  const agents = await getJSON('/console/api/agents');
  let talk = null;
  let meterTimer = null;

  const agentSelect = h('select', { id: 'agent', name: 'agent' },
    agents.map((a) => h('option', { value: a.name }, a.name)));
  const about = h('p', { class: 'muted', id: 'agent-about' });
  const showAbout = () => {
    const a = agents.find((x) => x.name === agentSelect.value);
    if (!a) { about.textContent = ''; return; }
    const tools = a.tools?.length ? `Tools: ${a.tools.join(', ')}.` : 'No tools.';
    about.textContent = [a.description, a.voice ? `Voice: ${a.voice}.` : '', tools]
      .filter(Boolean).join(' ');
  };
  agentSelect.addEventListener('change', showAbout);
  showAbout();

  const formatSet = h('fieldset', {},
    h('legend', {}, 'Audio'),
    radio('format', 'pcm16', 'Wide-band', '16 kHz up, 24 kHz down: the model as it sounds', true),
    radio('format', 'mulaw8k', 'As a caller hears it', 'μ-law 8 kHz both ways: the phone line'));
  const modeSet = h('fieldset', {},
    h('legend', {}, 'Path'),
    radio('mode', 'gateway', 'Through the gateway', 'the agent\'s tools, a call record', true),
    radio('mode', 'direct', 'Direct to the model',
      'bypasses the gateway: no tools run, no call record (ephemeral token)'));
  const directWarning = h('p', { class: 'warning', role: 'note', hidden: true },
    'Direct to the model bypasses the gateway: the agent\'s tools are not run and the call is '
    + 'not recorded. The browser holds a one-use token locked to this agent\'s setup, never the '
    + 'API key.');
  modeSet.addEventListener('change', () => {
    const direct = modeSet.querySelector('input:checked').value === 'direct';
    directWarning.hidden = !direct;
    formatSet.disabled = direct;
  });

  const startButton = h('button', { type: 'submit', id: 'start' }, 'Start talking');
  const hangButton = h('button', { type: 'button', id: 'hangup', class: 'danger', disabled: true }, 'Hang up');
  const status = h('p', { class: 'status', id: 'talk-status', role: 'status' }, 'Not connected.');
  const micMeter = h('meter', { id: 'mic-level', min: 0, max: 1, low: 0.1, high: 0.7, value: 0 });
  const replyMeter = h('meter', { id: 'reply-level', min: 0, max: 1, low: 0.1, high: 0.7, value: 0 });
  const figures = h('dl', { class: 'figures', id: 'talk-figures' });
  const keypad = h('div', { class: 'keypad', role: 'group', 'aria-label': 'Keypad (DTMF)' },
    [...'123456789*0#'].map((d) => h('button', {
      type: 'button', class: 'key', disabled: true, onclick: () => talk?.dtmf(d),
    }, d)));
  const conversation = new Conversation();

  const form = h('form', { class: 'card talk-form' },
    h('label', { for: 'agent' }, 'Agent'), agentSelect, about,
    h('div', { class: 'row' }, formatSet, modeSet),
    directWarning,
    h('div', { class: 'actions' }, startButton, hangButton),
    status);

  const showFigures = () => {
    const f = talk?.voice?.log.figures();
    if (!f) return;
    const item = (label, xs) => [h('dt', {}, label),
      h('dd', {}, xs.length ? xs.map((x) => `${Math.round(x)} ms`).join(', ') : '–')];
    figures.replaceChildren(
      ...item('Your speech end → first reply audio', f.speech_end_to_reply_ms),
      ...item('Barge-in → reply silent', f.barge_in_to_silence_ms));
  };

  const finish = (detail) => {
    clearInterval(meterTimer);
    micMeter.value = 0;
    replyMeter.value = 0;
    startButton.disabled = false;
    hangButton.disabled = true;
    for (const key of keypad.querySelectorAll('button')) key.disabled = true;
    const why = detail?.end_reason ?? detail?.end_kind ?? 'ended';
    status.textContent = `Call ended: ${why}.`;
    announce(status.textContent);
    showFigures();
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const direct = modeSet.querySelector('input:checked').value === 'direct';
    const format = formatSet.querySelector('input:checked').value;
    conversation.reset();
    startButton.disabled = true;
    status.textContent = 'Connecting…';
    talk = direct ? new DirectTalk(agentSelect.value) : new GatewayTalk(agentSelect.value, format);
    hook.talk = talk;
    talk.addEventListener('monitor', (e) => conversation.apply(e.detail));
    talk.addEventListener('status', (e) => { status.textContent = e.detail; });
    talk.addEventListener('ended', (e) => finish(e.detail));
    try {
      const info = await talk.start();
      hangButton.disabled = false;
      for (const key of keypad.querySelectorAll('button')) key.disabled = direct;
      status.textContent = direct
        ? `Talking to the model directly as ${info.agent} (jitter buffer ${JITTER_MS} ms).`
        : `Talking to ${info.agent}, call ${info.call_id} (jitter buffer ${JITTER_MS} ms).`;
      announce(status.textContent);
      meterTimer = setInterval(() => {
        const levels = talk?.voice?.levels;
        if (!levels) return;
        micMeter.value = Math.min(1, levels.mic * 4);
        replyMeter.value = Math.min(1, levels.reply * 4);
        showFigures();
      }, 100);
    } catch (err) {
      status.textContent = `Could not start: ${err.message}`;
      announce(status.textContent);
      startButton.disabled = false;
      await talk.hangUp().catch(() => {});
      talk = null;
    }
  });
  hangButton.addEventListener('click', async () => {
    hangButton.disabled = true;
    await talk?.hangUp();
  });

  view.append(
    h('h1', {}, 'Talk to an agent'),
    form,
    h('section', { class: 'card levels', 'aria-label': 'Levels' },
      h('label', { for: 'mic-level' }, 'Microphone'), micMeter,
      h('label', { for: 'reply-level' }, 'Agent'), replyMeter,
      keypad,
      h('h2', {}, 'Measured in this page'), figures),
    h('div', { class: 'card' }, conversation.el));

  return () => {
    clearInterval(meterTimer);
    talk?.hangUp().catch(() => {});
  };
}
