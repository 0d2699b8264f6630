// The add-on console: what a workspace admin sees of the add-on inside Clockify's page.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Session, SessionProblem, api, use } from './api';
import { Problem, boot } from './shell';
import { Explorer } from './explorer';
import { Flows } from './flows';
import { Bootstrap, Dashboard, Executions, Sources, Webhooks } from './pages';

export interface Dashboard {
  workspaceId: string;
  addon: { key: string; name: string; version: string };
  features: { customSources: boolean; genericHttp: boolean };
}

type Tab = 'dashboard' | 'flows' | 'executions' | 'webhooks' | 'explorer' | 'bootstrap' | 'sources';

const TABS: { id: Tab; label: string }[] = [
  { id: 'dashboard', label: 'Dashboard' },
  { id: 'flows', label: 'Flows' },
  { id: 'executions', label: 'Executions' },
  { id: 'webhooks', label: 'Webhook log' },
  { id: 'explorer', label: 'API explorer' },
  { id: 'bootstrap', label: 'Workspace data' },
  { id: 'sources', label: 'Custom webhooks' },
];

/** Where a number on the dashboard leads: a tab and its filter. */
export type Go = (tab: Tab, filter?: Record<string, string>) => void;

function Console({ s }: { s: Session }) {
  const [problem, setProblem] = useState<string | null>(null);
  const [info, setInfo] = useState<Dashboard | null>(null);
  const [tab, setTab] = useState<Tab>('dashboard');
  const [filter, setFilter] = useState<Record<string, string>>({});
  const tabs = useRef<(HTMLButtonElement | null)[]>([]);

  useEffect(() => {
    // Children load their data in their own effects, which run first: the session is in place
    // since start(); here it learns whom to tell when it expires.
    use(s, setProblem);
    api<Dashboard>('GET', 'ui/dashboard').then(setInfo).catch((e) => {
      if (!(e instanceof SessionProblem)) setProblem(String(e.message || e));
    });
  }, [s]);

  const shown = TABS.filter((t) => t.id !== 'sources' || (info && info.features.customSources));
  const go: Go = (t, f = {}) => {
    setFilter(f);
    setTab(t);
  };
  const onKey = (e: KeyboardEvent, i: number) => {
    const next = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? shown.length - 1 : null;
    if (next === null) return;
    e.preventDefault();
    const j = (next + shown.length) % shown.length;
    go(shown[j].id);
    tabs.current[j]?.focus();
  };

  if (problem) return <Problem title="Cannot open the console" message={problem} />;
  return (
    <div class="shell">
      <header>
        <h1>{info ? info.addon.name : 'Add-on console'}</h1>
        <nav role="tablist" aria-label="Console sections">
          {shown.map((t, i) => (
            <button
              role="tab"
              id={'tab-' + t.id}
              aria-selected={tab === t.id}
              aria-controls={'panel-' + t.id}
              tabIndex={tab === t.id ? 0 : -1}
              ref={(el) => {
                tabs.current[i] = el;
              }}
              onClick={() => go(t.id)}
              onKeyDown={(e) => onKey(e, i)}
            >
              {t.label}
            </button>
          ))}
        </nav>
      </header>
      <main id={'panel-' + tab} role="tabpanel" aria-labelledby={'tab-' + tab} tabIndex={-1}>
        {tab === 'dashboard' && <Dashboard go={go} />}
        {tab === 'flows' && <Flows s={s} go={go} features={info ? info.features : { customSources: false, genericHttp: false }} />}
        {tab === 'executions' && <Executions s={s} filter={filter} />}
        {tab === 'webhooks' && <Webhooks filter={filter} />}
        {tab === 'explorer' && <Explorer s={s} />}
        {tab === 'bootstrap' && <Bootstrap s={s} filter={filter} />}
        {tab === 'sources' && <Sources s={s} />}
      </main>
    </div>
  );
}

boot('Cannot open the console', (s) => <Console s={s} />);
