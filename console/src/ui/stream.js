// A server-sent event stream of monitor events. A subscriber that fell behind is told
// "lagged" and ended by the server; it starts again and gets a fresh snapshot.
export function monitorStream(url, onEvent, onState = () => {}) {
  let source = null;
  let stopped = false;
  let retry = null;
  const open = () => {
    source = new EventSource(url);
    source.onopen = () => onState('open');
    source.onerror = () => {
      onState(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    };
    source.onmessage = (e) => {
      let event;
      try { event = JSON.parse(e.data); } catch { return; }
      if (event.type === 'lagged') {
        source.close();
        if (!stopped) retry = setTimeout(open, 250);
        return;
      }
      onEvent(event);
    };
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(retry);
    source?.close();
  };
}
