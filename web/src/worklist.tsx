// A reader's queue: counts (to do, in progress, submitted) and pace per project, then the
// tasks to do in order; Enter or "Start reading" opens the next one.

import { useEffect, useState } from 'preact/hooks';
import { Head } from './ui';
import { get, type Task, type User } from './api';
import { go } from './app';

interface Summary {
  project_id: string;
  new: number;
  in_progress: number;
  submitted: number;
  median_seconds_per_image: number | null;
  submitted_last_day: number;
  submitted_last_week: number;
}

export function duration(s: number | null | undefined) {
  if (s === null || s === undefined) return '—';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** The caller's next task (in progress first, then new), optionally within a project. */
export async function nextTask(project?: string, skip?: string): Promise<Task | undefined> {
  for (const state of ['IN_PROGRESS', 'NEW']) {
    const q = new URLSearchParams({ state, limit: '5' });
    if (project) q.set('project', project);
    const r = await get<{ tasks: Task[] }>(`/api/v1/tasks?${q}`);
    const t = r.tasks.find((t) => t.task_id !== skip);
    if (t) return t;
  }
  return undefined;
}

export function Worklist({ user }: { user: User }) {
  const [summary, setSummary] = useState<Summary[] | null>(null);
  const [tasks, setTasks] = useState<Task[]>([]);
  const [filter, setFilter] = useState<'todo' | 'SUBMITTED'>('todo');
  const [error, setError] = useState('');
  useEffect(() => {
    get<{ projects: Summary[] }>('/api/v1/tasks/summary')
      .then((r) => setSummary(r.projects))
      .catch((e) => setError(e.message));
  }, []);
  useEffect(() => {
    const load = async () => {
      const states = filter === 'todo' ? ['IN_PROGRESS', 'NEW'] : ['SUBMITTED'];
      const all: Task[] = [];
      for (const s of states) {
        const r = await get<{ tasks: Task[] }>(`/api/v1/tasks?state=${s}&limit=200`);
        all.push(...r.tasks);
      }
      setTasks(all);
    };
    load().catch((e) => setError(e.message));
  }, [filter]);
  const total = (k: 'new' | 'in_progress' | 'submitted') => (summary ?? []).reduce((a, s) => a + s[k], 0);
  const next = tasks.find((t) => t.state !== 'SUBMITTED');
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      if (e.key === 'Enter' && next && !(e.target instanceof HTMLInputElement)) go(`tasks/${next.task_id}`);
    };
    addEventListener('keydown', key);
    return () => removeEventListener('keydown', key);
  }, [next]);
  return (
    <main class="page">
      <h1>Worklist</h1>
      <p class="muted">Signed in as {user.username}. Your tasks across projects; readers never see each other's work.</p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <section class="cards" aria-label="Your queue">
        <div class="card">
          <div class="big" data-testid="count-todo">{total('new')}</div>
          <div>to do</div>
        </div>
        <div class="card">
          <div class="big" data-testid="count-in-progress">{total('in_progress')}</div>
          <div>in progress</div>
        </div>
        <div class="card">
          <div class="big" data-testid="count-submitted">{total('submitted')}</div>
          <div>submitted</div>
        </div>
        <div class="card">
          <div class="big">{(summary ?? []).reduce((a, s) => a + s.submitted_last_day, 0)}</div>
          <div>in the last 24 h</div>
        </div>
      </section>
      {summary && summary.length > 0 && (
        <table class="grid" aria-label="Per project">
          <Head cols={['Project', 'To do', 'In progress', 'Submitted', 'Median time per image', 'Last 24 h', 'Last 7 days']} />
          <tbody>
            {summary.map((s) => (
              <tr key={s.project_id}>
                <td>{s.project_id}</td>
                <td>{s.new}</td>
                <td>{s.in_progress}</td>
                <td>{s.submitted}</td>
                <td>{duration(s.median_seconds_per_image)}</td>
                <td>{s.submitted_last_day}</td>
                <td>{s.submitted_last_week}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="toolbar">
        <button class="primary" disabled={!next} onClick={() => next && go(`tasks/${next.task_id}`)} data-testid="start-next">
          {next ? 'Start reading (Enter)' : 'Nothing to read'}
        </button>
        <span class="spacer" />
        <label>
          Show{' '}
          <select value={filter} onChange={(e) => setFilter((e.target as HTMLSelectElement).value as any)}>
            <option value="todo">to do</option>
            <option value="SUBMITTED">submitted</option>
          </select>
        </label>
      </div>
      <table class="grid tasks" aria-label="Tasks">
        <Head cols={['Project', 'Image', 'Kind', 'State', 'Last change']} />
        <tbody>
          {tasks.map((t) => (
            <tr key={t.task_id}>
              <td>{t.project_id}</td>
              <td>
                <a href={`#/tasks/${t.task_id}`}>{t.image_id.slice(0, 12)}</a>
              </td>
              <td>{t.kind}</td>
              <td>
                <span class={`state state-${t.state.toLowerCase()}`}>{t.state.replace('_', ' ').toLowerCase()}</span>
              </td>
              <td>{String(t.updated_at ?? '').replace('T', ' ').slice(0, 16)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}
