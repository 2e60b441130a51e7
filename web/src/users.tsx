import { useEffect, useState } from 'preact/hooks';
import { Head } from './ui';
import { get, post, type User } from './api';

export function UsersPage() {
  const [users, setUsers] = useState<User[]>([]);
  const [form, setForm] = useState({ username: '', password: '', site_role: 'user' });
  const [msg, setMsg] = useState('');
  const [error, setError] = useState('');
  const load = () =>
    get<{ users: User[] }>('/api/v1/users')
      .then((r) => setUsers(r.users))
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);
  const add = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      await post('/api/v1/users', form);
      setMsg(`Account ${form.username} added.`);
      setForm({ username: '', password: '', site_role: 'user' });
      load();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <main class="page">
      <h1>Users</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {msg && <p class="ok">{msg}</p>}
      <table class="grid" aria-label="Accounts">
        <Head cols={['User name', 'Site role']} />
        <tbody>
          {users.map((u) => (
            <tr key={u.user_id}>
              <td>{u.username}</td>
              <td>{u.site_role}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="inline-form" onSubmit={add} aria-label="Add an account">
        <h2>Add an account</h2>
        <label>
          User name <input required value={form.username} onInput={(e) => setForm({ ...form, username: (e.target as HTMLInputElement).value })} />
        </label>
        <label>
          Password (12 characters or more){' '}
          <input required type="password" minLength={12} autocomplete="new-password" value={form.password} onInput={(e) => setForm({ ...form, password: (e.target as HTMLInputElement).value })} />
        </label>
        <label>
          Site role{' '}
          <select value={form.site_role} onChange={(e) => setForm({ ...form, site_role: (e.target as HTMLSelectElement).value })}>
            <option value="user">user</option>
            <option value="admin">administrator</option>
          </select>
        </label>
        <button class="primary" type="submit">
          Add
        </button>
      </form>
    </main>
  );
}
