// What every page of the add-ons starts with: the session from the URL (or a plain message
// when it is missing or expired), the user's theme and language, then the page itself.
import { ComponentChild, render } from 'preact';
import { Session, isDark, session, use } from './api';

/** Why a page cannot be used, in place of it. */
export function Problem({ title, message }: { title: string; message: string }) {
  return (
    <main class="problem" role="alert">
      <h1>{title}</h1>
      <p>{message}</p>
    </main>
  );
}

/** Renders `page` into #app for the session in the URL, or the problem with it. */
export function boot(title: string, page: (s: Session) => ComponentChild) {
  const root = document.getElementById('app');
  if (!root) return;
  root.textContent = '';
  let s: Session;
  try {
    s = session(location.search);
  } catch (e) {
    render(<Problem title={title} message={e instanceof Error ? e.message : String(e)} />, root);
    return;
  }
  use(s, () => {});
  document.documentElement.dataset.theme = isDark(s) ? 'dark' : 'light';
  if (s.claims.language) document.documentElement.lang = s.claims.language.toLowerCase();
  render(page(s), root);
}
