import { ApiError, signIn } from '../api.js';
import { h } from '../dom.js';
import { navigate } from '../router.js';

function safeNext(query) {
  const next = query.get('next') ?? '';
  // Only a console path: never an open redirect to another site.
  return /^\/console\/(?!signin)[\w\-/.?=&%]*$/.test(next) ? next : '/console/talk';
}

export default function signInPage(view, { query }) {
  const error = h('p', { class: 'error', role: 'alert', id: 'signin-error', hidden: true });
  const password = h('input', {
    type: 'password', id: 'password', name: 'password', autocomplete: 'current-password',
    required: true, 'aria-describedby': 'signin-error',
  });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', { class: 'muted' }, 'The operator password set for this gateway.'),
    // One operator: no user name to give, but password managers expect the field.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'operator',
      class: 'visually-hidden', tabindex: '-1', 'aria-hidden': 'true' }),
    h('label', { for: 'password' }, 'Password'),
    password,
    error,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      await signIn(password.value);
      password.value = '';
      window.dispatchEvent(new CustomEvent('console:signed-in'));
      navigate(safeNext(query), { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : '';
        error.textContent = `Too many attempts.${wait}`;
      } else if (err instanceof ApiError && err.status === 401) {
        error.textContent = 'Wrong password.';
      } else {
        error.textContent = `Could not sign in: ${err.message}`;
      }
      error.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  view.append(form);
  password.focus();
}
