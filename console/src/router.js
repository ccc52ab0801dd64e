// History-API routes under /console/: each page mounts into <main> and returns a function
// that releases what it holds (sockets, event sources, audio, timers) when the page goes.

const BASE = '/console';
let routes = [];
let current = null;
let view = null;
let guard = async () => true;

export function setup(table, el, canEnter) {
  routes = table;
  view = el;
  guard = canEnter;
  document.addEventListener('click', (event) => {
    const a = event.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download') || event.defaultPrevented) return;
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith(`${BASE}/`)) return;
    if (url.pathname.startsWith(`${BASE}/api/`)) return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener('popstate', () => render());
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  return render();
}

function match(pathname) {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) || '/' : pathname;
  for (const route of routes) {
    const m = route.pattern.exec(rest);
    if (m) return { route, params: (m.groups ?? {}) };
  }
  return null;
}

export async function render() {
  const found = match(location.pathname);
  if (current) {
    const release = current;
    current = null;
    try { release(); } catch (err) { console.error(err); }
  }
  if (!found) {
    navigate(`${BASE}/talk`, { replace: true });
    return;
  }
  if (!(await guard(found.route))) return;
  view.replaceChildren();
  document.title = `${found.route.title} · voicegw console`;
  for (const a of document.querySelectorAll('#nav a')) {
    const here = location.pathname.startsWith(a.getAttribute('href'));
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const params = { ...found.params, query: new URLSearchParams(location.search) };
  const release = await found.route.page(view, params);
  current = typeof release === 'function' ? release : null;
  view.focus({ preventScroll: true });
}
