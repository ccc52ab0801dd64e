import './style.css';
import { isSignedIn, loadSession, signOut } from './api.js';
import { navigate, render, setup } from './router.js';
import signInPage from './pages/signin.js';
import talkPage from './pages/talk.js';
import livePage from './pages/live.js';
import liveCallPage from './pages/livecall.js';
import callsPage from './pages/calls.js';
import callPage from './pages/call.js';

const routes = [
  { pattern: /^\/signin\/?$/, page: signInPage, title: 'Sign in', open: true },
  { pattern: /^\/?$/, page: () => navigate('/console/talk', { replace: true }), title: 'Console' },
  { pattern: /^\/talk\/?$/, page: talkPage, title: 'Talk' },
  { pattern: /^\/live\/?$/, page: livePage, title: 'Live calls' },
  { pattern: /^\/live\/(?<sid>[^/]+)\/?$/, page: liveCallPage, title: 'Live call' },
  { pattern: /^\/calls\/?$/, page: callsPage, title: 'Calls' },
  { pattern: /^\/calls\/(?<sid>[^/]+)\/?$/, page: callPage, title: 'Call' },
];

let checked = false;

function showChrome(signedIn) {
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('signout').hidden = !signedIn;
}

async function canEnter(route) {
  if (!checked) {
    checked = true;
    try { await loadSession(); } catch { /* shown as signed out */ }
  }
  showChrome(isSignedIn());
  if (route.open || isSignedIn()) return true;
  const next = location.pathname + location.search;
  navigate(`/console/signin?next=${encodeURIComponent(next)}`, { replace: true });
  return false;
}

window.addEventListener('console:signed-in', () => showChrome(true));
window.addEventListener('console:signed-out', () => {
  showChrome(false);
  if (!location.pathname.startsWith('/console/signin')) {
    const next = location.pathname + location.search;
    navigate(`/console/signin?next=${encodeURIComponent(next)}`, { replace: true });
  }
});

document.getElementById('signout').addEventListener('click', async () => {
  try { await signOut(); } finally {
    showChrome(false);
    navigate('/console/signin', { replace: true });
  }
});

setup(routes, document.getElementById('view'), canEnter);
render();
