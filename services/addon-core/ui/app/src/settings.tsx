// The reference add-on's settings page (its manifest's `settings`), shown by Clockify in the
// add-on's settings: the installation, the workspace data fetch, and the settings form. Same
// session, theme and accessibility as the console.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, Session, SessionProblem, api, use } from './api';
import { Problem, boot } from './shell';
import type { Run } from './pages';

interface Setting {
  id: string;
  name: string;
  description: string;
  type: 'CHECKBOX' | 'NUMBER';
  bounds: { min: number; max: number } | null;
  value: boolean | number | string;
}
interface State {
  workspaceId: string;
  addon: { name: string; version: string };
  installation: { status: string; apiUrl: string; installedAt: string };
  bootstrap: Run | null;
  settings: Setting[];
  canEdit: boolean;
}

function Page({ onProblem }: { onProblem: (m: string) => void }) {
  const [state, setState] = useState<State | null>(null);
  const [values, setValues] = useState<Record<string, boolean | number | string>>({});
  const [status, setStatus] = useState<{ text: string; ok: boolean } | null>(null);
  const [saving, setSaving] = useState(false);
  const show = (d: State) => {
    setState(d);
    setValues(Object.fromEntries(d.settings.map((x) => [x.id, x.value])));
  };
  useEffect(() => {
    api<State>('GET', 'settings/state')
      .then(show)
      .catch((e) => !(e instanceof SessionProblem) && onProblem(String(e.message || e)));
  }, []);
  useEffect(() => {
    if (!state) return;
    const t = setInterval(() => {
      api<{ bootstrap: Run | null }>('GET', 'bootstrap/' + encodeURIComponent(state.workspaceId) + '/status')
        .then((r) => setState((old) => (old ? { ...old, bootstrap: r.bootstrap } : old)))
        .catch(() => {});
    }, 5000);
    return () => clearInterval(t);
  }, [state && state.workspaceId]);
  if (!state) return <p role="status">Loading the settings…</p>;
  const run = state.bootstrap;
  const save = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    try {
      show(await api<State>('PUT', 'settings/state', { settings: values }));
      setStatus({ text: 'Saved.', ok: true });
    } catch (err) {
      const details = err instanceof ApiError && err.details.length ? ': ' + err.details.join('; ') : '';
      setStatus({ text: (err as Error).message + details, ok: false });
    } finally {
      setSaving(false);
    }
  };
  const fetchNow = async () => {
    try {
      const r = await api<{ bootstrap: Run }>('POST', 'bootstrap/' + encodeURIComponent(state.workspaceId));
      setState({ ...state, bootstrap: r.bootstrap });
      setStatus({ text: 'Fetching the workspace data.', ok: true });
    } catch (err) {
      setStatus({ text: (err as Error).message, ok: false });
    }
  };
  const rows: [string, string][] = [
    ['Workspace', state.workspaceId],
    ['Status', state.installation.status],
    ['API', state.installation.apiUrl],
    ['Installed', new Date(state.installation.installedAt).toLocaleString()],
    ['Add-on', state.addon.name + ' ' + state.addon.version],
  ];
  return (
    <main class="settings-page">
      <h1>{state.addon.name} settings</h1>
      <p id="status" role={status && !status.ok ? 'alert' : 'status'} class={status ? (status.ok ? 'ok' : 'error') : ''}>
        {status ? status.text : !state.canEdit ? 'Only workspace owners and admins can change these settings.' : ''}
      </p>
      <section aria-labelledby="inst-title">
        <h2 id="inst-title">Installation</h2>
        <dl class="facts">
          {rows.map(([k, v]) => (
            <>
              <dt>{k}</dt>
              <dd data-field={k.toLowerCase()}>{v}</dd>
            </>
          ))}
        </dl>
      </section>
      <section aria-labelledby="bs-title">
        <h2 id="bs-title">Workspace data</h2>
        <p>
          <span id="bs-state" data-state={run ? run.state : 'NONE'}>
            {run ? run.state : 'never run'}
          </span>{' '}
          {run ? run.entitiesStored + ' entities, ' + run.pagesFetched + ' pages' + (run.errors.length ? ', ' + run.errors.length + ' error(s)' : '') : ''}
        </p>
        <progress max={run && run.endpointsTotal ? run.endpointsTotal : 1} value={run ? run.endpointsDone : 0} aria-label="Workspace data fetched" />
        <div class="actions">
          <button type="button" onClick={fetchNow} disabled={!state.canEdit}>
            Fetch workspace data now
          </button>
        </div>
      </section>
      <section aria-labelledby="set-title">
        <h2 id="set-title">Settings</h2>
        <form onSubmit={save} noValidate>
          {state.settings.map((x) => (
            <div class="setting field">
              {x.type === 'CHECKBOX' ? (
                <div class="check">
                  <input id={'set-' + x.id} name={x.id} type="checkbox" disabled={!state.canEdit} checked={values[x.id] === true || values[x.id] === 'true'} aria-describedby={'help-' + x.id} onChange={(e) => setValues({ ...values, [x.id]: (e.currentTarget as HTMLInputElement).checked })} />
                  <label for={'set-' + x.id}>{x.name}</label>
                </div>
              ) : (
                <>
                  <label for={'set-' + x.id}>{x.name}</label>
                  <input
                    id={'set-' + x.id}
                    name={x.id}
                    type="number"
                    step={1}
                    min={x.bounds ? x.bounds.min : undefined}
                    max={x.bounds ? x.bounds.max : undefined}
                    disabled={!state.canEdit}
                    aria-describedby={'help-' + x.id}
                    value={String(values[x.id] ?? '')}
                    onInput={(e) => setValues({ ...values, [x.id]: Number((e.currentTarget as HTMLInputElement).value) })}
                  />
                </>
              )}
              <small id={'help-' + x.id}>
                {x.description}
                {x.bounds ? ' (' + x.bounds.min + ' to ' + x.bounds.max + ')' : ''}
              </small>
            </div>
          ))}
          <div class="actions">
            <button id="save" class="primary" type="submit" disabled={!state.canEdit || saving}>
              {saving ? 'Saving…' : 'Save settings'}
            </button>
          </div>
        </form>
      </section>
    </main>
  );
}

function App({ s }: { s: Session }) {
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => use(s, setProblem), [s]);
  return problem ? <Problem title="Cannot open the settings" message={problem} /> : <Page onProblem={setProblem} />;
}

boot('Cannot open the settings', (s) => <App s={s} />);
