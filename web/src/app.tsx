// The single page: sign-in, then role-aware menus over the worklist, the task screen
// (reading or review), project administration and accounts. Routes live in the URL's hash
// (#/tasks/ID), so `radlab serve` answers one page and reloads land where they were.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, post, setCsrf, type User } from './api';
import { SignIn } from './signin';
import { Worklist } from './worklist';
import { TaskPage } from './task';
import { ProjectsPage, ProjectPage } from './admin';
import { UsersPage } from './users';

export function useRoute(): string[] {
  const read = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(read());
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function go(path: string) {
  location.hash = '#/' + path.replace(/^\//, '');
}

export function App() {
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const route = useRoute();
  useEffect(() => {
    get<{ user: User; csrf_token?: string }>('/api/v1/me')
      .then((r) => {
        if (r.csrf_token) setCsrf(r.csrf_token);
        setUser(r.user);
      })
      .catch(() => setUser(null));
  }, []);
  if (user === undefined) return <main class="center muted">Loading…</main>;
  if (user === null)
    return (
      <SignIn
        onSignedIn={(u, csrf) => {
          setCsrf(csrf);
          setUser(u);
        }}
      />
    );
  const signOut = async () => {
    try {
      await post('/api/v1/auth/logout');
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
    }
    setCsrf('');
    setUser(null);
    go('');
  };
  const [page, ...rest] = route;
  const isAdmin = user.site_role === 'admin';
  let body;
  if (page === 'tasks' && rest[0]) body = <TaskPage key={rest[0]} taskId={rest[0]} user={user} />;
  else if (page === 'projects' && rest[0]) body = <ProjectPage key={rest[0]} projectId={rest[0]} tab={rest[1] ?? 'overview'} user={user} />;
  else if (page === 'projects') body = <ProjectsPage user={user} />;
  else if (page === 'users' && isAdmin) body = <UsersPage />;
  else body = <Worklist user={user} />;
  const fullScreen = page === 'tasks';
  return (
    <div class={fullScreen ? 'app app-task' : 'app'}>
      <header class="topbar">
        <a class="brand" href="#/">
          radlab
        </a>
        <nav aria-label="Main">
          <a href="#/" aria-current={!page ? 'page' : undefined}>
            Worklist
          </a>
          <a href="#/projects" aria-current={page === 'projects' ? 'page' : undefined}>
            Projects
          </a>
          {isAdmin && (
            <a href="#/users" aria-current={page === 'users' ? 'page' : undefined}>
              Users
            </a>
          )}
        </nav>
        <span class="spacer" />
        <span class="who" data-testid="who">
          {user.username}
          {isAdmin ? ' · administrator' : ''}
        </span>
        <button class="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      {body}
    </div>
  );
}
