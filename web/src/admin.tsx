// Project administration: create a project from a template; per project, its progress
// (images by state, each reader's pace, agreement per label), labels, images, workflows and
// assignment, members, and exports.

import { useEffect, useState } from 'preact/hooks';
import { Head } from './ui';
import { csrfToken, enc, get, post, put, type Schema, type SchemaLabel, type User } from './api';
import { go } from './app';
import { Bars } from './charts';
import { duration } from './worklist';
import { RADIOGRAPH_PRESETS, type Preset } from './presets';

const TEMPLATES: [string, string][] = [
  ['vindr-cxr', 'VinDr-CXR: 22 box labels, 6 image labels (chest X-ray)'],
  ['vindr-mammo', 'VinDr-Mammo: findings with BI-RADS, breast density'],
  ['vindr-spinexr', 'VinDr-SpineXR: 7 spine lesions'],
  ['pedicxr', 'PediCXR: 36 box labels, 15 image labels (paediatric chest X-ray)'],
];

export function ProjectsPage({ user }: { user: User }) {
  const [projects, setProjects] = useState<{ project_id: string; created_at: string }[]>([]);
  const [id, setId] = useState('');
  const [template, setTemplate] = useState('vindr-cxr');
  const [error, setError] = useState('');
  useEffect(() => {
    get<{ projects: any[] }>('/api/v1/projects')
      .then((r) => setProjects(r.projects))
      .catch((e) => setError(e.message));
  }, []);
  const create = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      await post('/api/v1/projects', { project_id: id, template });
      go(`projects/${enc(id)}`);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <main class="page">
      <h1>Projects</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ul class="project-list">
        {projects.map((p) => (
          <li key={p.project_id}>
            <a href={`#/projects/${enc(p.project_id)}`}>{p.project_id}</a> <span class="muted small">created {p.created_at.slice(0, 10)}</span>
          </li>
        ))}
        {projects.length === 0 && <li class="muted">No project yet{user.site_role === 'admin' ? '' : ' that you are a member of'}.</li>}
      </ul>
      <form class="inline-form" onSubmit={create} aria-label="New project">
        <h2>New project</h2>
        <label>
          Project id{' '}
          <input name="project_id" required pattern="[A-Za-z0-9._\-]+" title="letters, digits, dot, dash, underscore" value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Template{' '}
          <select name="template" value={template} onChange={(e) => setTemplate((e.target as HTMLSelectElement).value)}>
            {TEMPLATES.map(([t, d]) => (
              <option key={t} value={t}>
                {d}
              </option>
            ))}
          </select>
        </label>
        <button class="primary" type="submit">
          Create
        </button>
      </form>
    </main>
  );
}

const TABS: [string, string][] = [
  ['overview', 'Progress'],
  ['labels', 'Labels'],
  ['images', 'Images'],
  ['triage', 'Triage'],
  ['people', 'Readers and workflows'],
  ['export', 'Export'],
];

export function ProjectPage({ projectId, tab, user }: { projectId: string; tab: string; user: User }) {
  const [project, setProject] = useState<{ schema: Schema; roles: string[] } | null>(null);
  const [error, setError] = useState('');
  const reload = () =>
    get(`/api/v1/projects/${enc(projectId)}`)
      .then(setProject)
      .catch((e) => setError(e.message));
  useEffect(() => {
    reload();
  }, [projectId]);
  const owner = user.site_role === 'admin' || project?.roles.includes('owner');
  return (
    <main class="page">
      <h1>{projectId}</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {project && !owner && <p class="muted">You read in this project; its administration is for its owners. Your tasks are on the worklist.</p>}
      {project && owner && (
        <>
          <nav class="tabs" aria-label="Project">
            {TABS.map(([t, name]) => (
              <a key={t} href={`#/projects/${enc(projectId)}/${t}`} aria-current={tab === t ? 'page' : undefined}>
                {name}
              </a>
            ))}
          </nav>
          {tab === 'overview' && <Progress projectId={projectId} />}
          {tab === 'labels' && <Labels projectId={projectId} schema={project.schema} onSaved={reload} />}
          {tab === 'images' && <Images projectId={projectId} />}
          {tab === 'triage' && <Triage projectId={projectId} />}
          {tab === 'people' && <People projectId={projectId} isAdmin={user.site_role === 'admin'} />}
          {tab === 'export' && <Export projectId={projectId} />}
        </>
      )}
    </main>
  );
}

function useError(): [string, (e: unknown) => void, () => void] {
  const [error, setError] = useState('');
  return [error, (e) => setError((e as Error).message), () => setError('')];
}

function ErrorLine({ error }: { error: string }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

const STATE_COLORS: Record<string, string> = { new: '#8c8c8c', reading: '#5b9bd5', in_review: '#ffb74d', review: '#ffb74d', done: '#66bb6a' };

function Progress({ projectId }: { projectId: string }) {
  const [p, setP] = useState<any>(null);
  const [error, fail] = useError();
  useEffect(() => {
    const load = () => get(`/api/v1/projects/${enc(projectId)}/progress`).then(setP).catch(fail);
    load();
    const t = setInterval(load, 10000);
    return () => clearInterval(t);
  }, [projectId]);
  if (!p) return <ErrorLine error={error} />;
  const images: { split: string; state: string; images: number }[] = p.images;
  const readers: any[] = p.readers;
  return (
    <section aria-label="Progress">
      <ErrorLine error={error} />
      <div class="charts">
        <Bars
          title="Images by split and state"
          bars={images.map((r) => ({ label: `${r.split} · ${r.state.toLowerCase()}`, value: r.images, color: STATE_COLORS[r.state.toLowerCase()] }))}
        />
        <Bars title="Images submitted per reader" bars={readers.map((r) => ({ label: r.username, value: r.submitted, text: `${r.submitted} of ${r.new + r.in_progress + r.submitted}` }))} />
        <Bars
          title="Median time per image"
          bars={readers.filter((r) => r.median_seconds_per_image != null).map((r) => ({ label: r.username, value: r.median_seconds_per_image, text: duration(r.median_seconds_per_image), color: '#9575cd' }))}
        />
        <Bars
          title={`Agreement per image label (Fleiss' kappa, ${p.agreement.images_read} images read by all)`}
          max={1}
          bars={p.agreement.image_labels.map((l: any) => ({ label: l.label, value: Math.max(0, l.fleiss ?? 0), text: l.fleiss == null ? 'n/a' : l.fleiss.toFixed(2), color: '#4db6ac' }))}
        />
        <Bars
          title="Agreement per box label (F1 between readers at IoU 0.4)"
          max={1}
          bars={p.agreement.boxes.map((b: any) => ({ label: b.label, value: b.f1 ?? 0, text: b.f1 == null ? 'n/a' : Number(b.f1).toFixed(2), color: '#e57373' }))}
        />
      </div>
      <table class="grid" aria-label="Readers">
        <Head cols={['Reader', 'New', 'In progress', 'Submitted', 'Median per image']} />
        <tbody>
          {readers.map((r) => (
            <tr key={r.username}>
              <td>{r.username}</td>
              <td>{r.new}</td>
              <td>{r.in_progress}</td>
              <td>{r.submitted}</td>
              <td>{duration(r.median_seconds_per_image)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Labels({ projectId, schema, onSaved }: { projectId: string; schema: Schema & { window_presets?: Preset[] }; onSaved: () => void }) {
  const [labels, setLabels] = useState<SchemaLabel[]>(schema.labels);
  const [presets, setPresets] = useState<Preset[]>(schema.window_presets ?? []);
  const setPreset = (i: number, patch: Partial<Preset>) => setPresets(presets.map((p, j) => (i === j ? { ...p, ...patch } : p)));
  const [error, fail, clear] = useError();
  const [msg, setMsg] = useState('');
  const set = (i: number, patch: Partial<SchemaLabel>) => setLabels(labels.map((l, j) => (i === j ? { ...l, ...patch } : l)));
  const save = async () => {
    clear();
    setMsg('');
    try {
      await put(`/api/v1/projects/${enc(projectId)}/schema`, { schema: { ...schema, labels, window_presets: presets } });
      setMsg('Labels and window presets saved.');
      onSaved();
    } catch (e) {
      fail(e);
    }
  };
  return (
    <section aria-label="Labels">
      <p class="muted">Names, scopes and keys are free until the first annotation; after it, labels can be added and their colour, key and description changed.</p>
      <ErrorLine error={error} />
      {msg && <p class="ok">{msg}</p>}
      <table class="grid labels-table">
        <Head cols={['Name', 'Scope', 'Colour', 'Key', 'Alone']} />
        <tbody>
          {labels.map((l, i) => (
            <tr key={i}>
              <td>
                <input aria-label="Label name" value={l.name} onInput={(e) => set(i, { name: (e.target as HTMLInputElement).value })} />
              </td>
              <td>
                <select aria-label="Scope" value={l.scope} onChange={(e) => set(i, { scope: (e.target as HTMLSelectElement).value as any })}>
                  <option value="local">box</option>
                  <option value="image">image</option>
                  <option value="study">study</option>
                  <option value="breast">breast</option>
                </select>
              </td>
              <td>
                <input aria-label="Colour" type="color" value={l.color} onInput={(e) => set(i, { color: (e.target as HTMLInputElement).value })} />
              </td>
              <td>
                <input aria-label="Key" size={2} maxLength={1} value={l.hotkey ?? ''} onInput={(e) => set(i, { hotkey: (e.target as HTMLInputElement).value || undefined })} />
              </td>
              <td>
                <input aria-label="Exclusive" type="checkbox" checked={!!l.exclusive} onChange={() => set(i, { exclusive: !l.exclusive })} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="toolbar">
        <button onClick={() => setLabels([...labels, { name: `New label ${labels.length + 1}`, scope: 'local', color: '#ff8800' }])}>Add a label</button>
      </div>
      <h2>Window presets</h2>
      <p class="muted">
        The viewer offers the file's windows, a window from the histogram, then these (Shift+3 onwards). None: lung, mediastinum and bone. Relative presets are fractions of the image's own range from displayed black (0)
        to white (1), for radiographs; others are in modality units (CT: Hounsfield).
      </p>
      <table class="grid" aria-label="Window presets">
        <Head cols={['Name', 'Centre', 'Width', 'Relative', '']} />
        <tbody>
          {presets.map((p, i) => (
            <tr key={i}>
              <td>
                <input aria-label="Preset name" name={`preset-name-${i}`} value={p.name} onInput={(e) => setPreset(i, { name: (e.target as HTMLInputElement).value })} />
              </td>
              <td>
                <input aria-label="Centre" name={`preset-center-${i}`} type="number" step="any" value={p.center} onInput={(e) => setPreset(i, { center: Number((e.target as HTMLInputElement).value) })} />
              </td>
              <td>
                <input aria-label="Width" name={`preset-width-${i}`} type="number" step="any" value={p.width} onInput={(e) => setPreset(i, { width: Number((e.target as HTMLInputElement).value) })} />
              </td>
              <td>
                <input aria-label="Relative" type="checkbox" checked={!!p.relative} onChange={() => setPreset(i, { relative: !p.relative })} />
              </td>
              <td>
                <button class="small danger" onClick={() => setPresets(presets.filter((_, j) => j !== i))}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="toolbar">
        <button onClick={() => setPresets([...presets, { name: `Preset ${presets.length + 1}`, center: 0.5, width: 1, relative: true }])}>Add a preset</button>
        <button onClick={() => setPresets(RADIOGRAPH_PRESETS)}>Start from lung / mediastinum / bone</button>
        <span class="spacer" />
        <button class="primary" onClick={save}>
          Save labels and presets
        </button>
      </div>
    </section>
  );
}

function Images({ projectId }: { projectId: string }) {
  const [split, setSplit] = useState('train');
  const [query, setQuery] = useState({ ModalitiesInStudy: '', BodyPartExamined: '', StudyDate: '' });
  const [images, setImages] = useState<any[]>([]);
  const [msg, setMsg] = useState('');
  const [error, fail, clear] = useError();
  const load = () =>
    get(`/api/v1/projects/${enc(projectId)}/images?limit=1000`)
      .then((r: any) => setImages(r.images))
      .catch(fail);
  useEffect(() => {
    load();
  }, [projectId]);
  const add = async (body: any) => {
    clear();
    setMsg('');
    try {
      const r = await post(`/api/v1/projects/${enc(projectId)}/images`, { ...body, split });
      setMsg(`${r.added} images added to ${split}${r.already ? ` (${r.already} were in the project)` : ''}.`);
      load();
    } catch (e) {
      fail(e);
    }
  };
  const upload = async (e: Event) => {
    e.preventDefault();
    clear();
    const form = e.target as HTMLFormElement;
    const data = new FormData(form);
    try {
      const r = await fetch(`/api/v1/projects/${enc(projectId)}/upload?split=${split}`, {
        method: 'POST',
        body: data,
        headers: { 'X-CSRF-Token': csrfToken() },
      });
      const j = await r.json();
      if (!r.ok) throw new Error(j.error?.message ?? r.statusText);
      const files: { new_in_project: boolean }[] = j.files ?? [j];
      const added = files.filter((f) => f.new_in_project).length;
      setMsg(`${files.length} files uploaded: ${added} images added to ${split}${files.length > added ? `, ${files.length - added} were in the project` : ''}.`);
      form.reset();
      load();
    } catch (err) {
      fail(err);
    }
  };
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [moveTo, setMoveTo] = useState('test');
  const move = async () => {
    clear();
    setMsg('');
    try {
      const r = await post(`/api/v1/projects/${enc(projectId)}/images/split`, { image_ids: [...picked], split: moveTo });
      setMsg(`${r.moved} images moved to ${moveTo}.`);
      setPicked(new Set());
      load();
    } catch (e) {
      fail(e);
    }
  };
  const counts: Record<string, number> = {};
  for (const i of images) counts[i.split] = (counts[i.split] ?? 0) + 1;
  const q = Object.fromEntries(Object.entries(query).filter(([, v]) => v.trim()));
  return (
    <section aria-label="Images">
      <ErrorLine error={error} />
      {msg && <p class="ok">{msg}</p>}
      <p>
        {images.length} images{images.length ? ': ' : ''}
        {Object.entries(counts)
          .map(([s, n]) => `${n} ${s}`)
          .join(', ')}
        .
      </p>
      <div class="inline-form">
        <label>
          Into the split{' '}
          <select name="split" value={split} onChange={(e) => setSplit((e.target as HTMLSelectElement).value)}>
            <option value="train">train</option>
            <option value="test">test</option>
            <option value="unassigned">unassigned</option>
          </select>
        </label>
      </div>
      <form
        class="inline-form"
        aria-label="Add from the catalog"
        onSubmit={(e) => {
          e.preventDefault();
          add(Object.keys(q).length ? { query: q } : { all: true });
        }}
      >
        <h2>Add from the catalog</h2>
        <label>
          Modality <input name="modality" placeholder="CR, DX" value={query.ModalitiesInStudy} onInput={(e) => setQuery({ ...query, ModalitiesInStudy: (e.target as HTMLInputElement).value })} />
        </label>
        <label>
          Body part <input name="bodypart" placeholder="CHEST" value={query.BodyPartExamined} onInput={(e) => setQuery({ ...query, BodyPartExamined: (e.target as HTMLInputElement).value })} />
        </label>
        <label>
          Study date <input name="studydate" placeholder="20200101-20201231" value={query.StudyDate} onInput={(e) => setQuery({ ...query, StudyDate: (e.target as HTMLInputElement).value })} />
        </label>
        <button class="primary" type="submit">
          {Object.keys(q).length ? 'Add the matching images' : 'Add every catalogued image'}
        </button>
      </form>
      <form class="inline-form" onSubmit={upload} aria-label="Upload DICOM files">
        <h2>Upload DICOM files</h2>
        <label>
          Files <input type="file" name="files" multiple accept=".dcm,.dicom,application/dicom" required />
        </label>
        <button type="submit">Upload</button>
      </form>
      <div class="inline-form" aria-label="Move images">
        <span>{picked.size} selected</span>
        <label>
          Move them to{' '}
          <select name="move-to" value={moveTo} onChange={(e) => setMoveTo((e.target as HTMLSelectElement).value)}>
            <option value="train">train</option>
            <option value="test">test</option>
            <option value="unassigned">unassigned</option>
          </select>
        </label>
        <button disabled={!picked.size} onClick={move}>
          Move
        </button>
      </div>
      <table class="grid" aria-label="Project images">
        <thead>
          <tr>
            <th scope="col">
              <input
                type="checkbox"
                aria-label="Select all"
                checked={images.length > 0 && picked.size === Math.min(images.length, 200)}
                onChange={(e) => setPicked((e.target as HTMLInputElement).checked ? new Set(images.slice(0, 200).map((i) => i.image_id)) : new Set())}
              />
            </th>
            <th scope="col">Image id</th>
            <th scope="col">Modality</th>
            <th scope="col">Split</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {images.slice(0, 200).map((i) => (
            <tr key={i.image_id}>
              <td>
                <input
                  type="checkbox"
                  aria-label={`Select ${i.image_id}`}
                  checked={picked.has(i.image_id)}
                  onChange={() => {
                    const n = new Set(picked);
                    if (n.has(i.image_id)) n.delete(i.image_id);
                    else n.add(i.image_id);
                    setPicked(n);
                  }}
                />
              </td>
              <td>
                <code>{i.image_id}</code>
              </td>
              <td>{i.modality}</td>
              <td>{i.split}</td>
              <td>{i.state}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function People({ projectId, isAdmin }: { projectId: string; isAdmin: boolean }) {
  const [members, setMembers] = useState<{ username: string; role: string }[]>([]);
  const [users, setUsers] = useState<User[]>([]);
  const [workflows, setWorkflows] = useState<any[]>([]);
  const [form, setForm] = useState({ username: '', role: 'annotator' });
  const [wf, setWf] = useState({ split: 'train', kind: 'independent', readers: 3, reviewers: 0 });
  const [msg, setMsg] = useState('');
  const [error, fail, clear] = useError();
  const load = () => {
    get(`/api/v1/projects/${enc(projectId)}/members`)
      .then((r: any) => setMembers(r.members))
      .catch(fail);
    get(`/api/v1/projects/${enc(projectId)}/workflows`)
      .then((r: any) => setWorkflows(r.workflows))
      .catch(fail);
    if (isAdmin)
      get('/api/v1/users')
        .then((r: any) => setUsers(r.users))
        .catch(() => {});
  };
  useEffect(load, [projectId]);
  const act = async (f: () => Promise<string>) => {
    clear();
    setMsg('');
    try {
      setMsg(await f());
      load();
    } catch (e) {
      fail(e);
    }
  };
  return (
    <section aria-label="Readers and workflows">
      <ErrorLine error={error} />
      {msg && (
        <p class="ok" role="status">
          {msg}
        </p>
      )}
      <h2>Members</h2>
      <table class="grid" aria-label="Members">
        <Head cols={['User', 'Role']} />
        <tbody>
          {members.map((m) => (
            <tr key={m.username + m.role}>
              <td>{m.username}</td>
              <td>{m.role}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        class="inline-form"
        aria-label="Add a member"
        onSubmit={(e) => {
          e.preventDefault();
          act(async () => {
            await post(`/api/v1/projects/${enc(projectId)}/members`, form);
            return `${form.username} is now ${form.role} of the project.`;
          });
        }}
      >
        <label>
          User{' '}
          <input name="member" list="all-users" required value={form.username} onInput={(e) => setForm({ ...form, username: (e.target as HTMLInputElement).value })} />
          <datalist id="all-users">
            {users.map((u) => (
              <option key={u.user_id} value={u.username} />
            ))}
          </datalist>
        </label>
        <label>
          Role{' '}
          <select name="role" value={form.role} onChange={(e) => setForm({ ...form, role: (e.target as HTMLSelectElement).value })}>
            <option value="annotator">reader (annotator)</option>
            <option value="reviewer">reviewer</option>
            <option value="owner">owner</option>
          </select>
        </label>
        <button type="submit">Add member</button>
      </form>
      <h2>Workflows</h2>
      <table class="grid" aria-label="Workflows">
        <Head cols={['Split', 'Workflow', 'Readers', 'Reviewers', '']} />
        <tbody>
          {workflows.map((w) => (
            <tr key={w.split}>
              <td>{w.split}</td>
              <td>{w.kind}</td>
              <td>{w.readers}</td>
              <td>{w.reviewers}</td>
              <td>
                <button
                  data-testid={`assign-${w.split}`}
                  onClick={() =>
                    act(async () => {
                      const r = await post(`/api/v1/projects/${enc(projectId)}/assign`, { split: w.split });
                      return `Assigned ${w.split}: ${r.tasks_created} tasks on ${r.images} images.`;
                    })
                  }
                >
                  Assign readers
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        class="inline-form"
        aria-label="Set a workflow"
        onSubmit={(e) => {
          e.preventDefault();
          act(async () => {
            await put(`/api/v1/projects/${enc(projectId)}/workflows/${wf.split}`, { kind: wf.kind, readers: wf.readers, reviewers: wf.kind === 'consensus' ? wf.reviewers : 0 });
            return `Workflow of ${wf.split} set.`;
          });
        }}
      >
        <label>
          Split{' '}
          <select name="wf-split" value={wf.split} onChange={(e) => setWf({ ...wf, split: (e.target as HTMLSelectElement).value })}>
            <option value="train">train</option>
            <option value="test">test</option>
          </select>
        </label>
        <label>
          Workflow{' '}
          <select name="wf-kind" value={wf.kind} onChange={(e) => setWf({ ...wf, kind: (e.target as HTMLSelectElement).value })}>
            <option value="independent">independent readers</option>
            <option value="consensus">readers, then reviewers' consensus</option>
            <option value="single">single reader</option>
          </select>
        </label>
        <label>
          Readers <input name="wf-readers" type="number" min={1} max={20} value={wf.readers} onInput={(e) => setWf({ ...wf, readers: Number((e.target as HTMLInputElement).value) })} />
        </label>
        {wf.kind === 'consensus' && (
          <label>
            Reviewers <input name="wf-reviewers" type="number" min={1} max={10} value={wf.reviewers} onInput={(e) => setWf({ ...wf, reviewers: Number((e.target as HTMLInputElement).value) })} />
          </label>
        )}
        <button type="submit">Set workflow</button>
      </form>
    </section>
  );
}

type Verdict = {
  image_id: string;
  model: string;
  valid: boolean;
  class: string;
  probability: string;
  orientation: string;
  upright_blob: string;
  findings: { code: string; reason: string }[];
  overruled: boolean | null;
  overruled_by: string;
};

/** The triage verdicts of the project (`radlab triage --project`): the rejected first, each
 * with its reasons; an owner keeps or rejects an image against the verdict, or takes that
 * back. */
function Triage({ projectId }: { projectId: string }) {
  const [data, setData] = useState<{ verdicts: Verdict[]; valid: number; rejected: number } | null>(null);
  const [onlyRejected, setOnlyRejected] = useState(true);
  const [error, fail, clear] = useError();
  const load = () =>
    get(`/api/v1/projects/${enc(projectId)}/triage`)
      .then(setData)
      .catch(fail);
  useEffect(() => {
    load();
  }, [projectId]);
  const overrule = async (image: string, valid: boolean | null) => {
    clear();
    try {
      await put(`/api/v1/projects/${enc(projectId)}/triage/${enc(image)}`, { valid });
      load();
    } catch (e) {
      fail(e);
    }
  };
  if (!data) return <ErrorLine error={error} />;
  const stands = (v: Verdict) => v.overruled ?? v.valid;
  const shown = data.verdicts.filter((v) => !onlyRejected || !v.valid || v.overruled !== null);
  return (
    <section aria-label="Triage">
      <ErrorLine error={error} />
      {data.verdicts.length === 0 ? (
        <p class="muted">
          No verdicts yet: run <code>radlab triage --project {projectId}</code> on the server.
        </p>
      ) : (
        <>
          <p data-testid="triage-counts">
            {data.valid} valid, {data.rejected} rejected of {data.verdicts.length} images.
          </p>
          <label>
            <input type="checkbox" checked={onlyRejected} onChange={(e) => setOnlyRejected((e.target as HTMLInputElement).checked)} /> Only the rejected and the
            overruled
          </label>
          <table class="grid" aria-label="Triage verdicts">
            <Head cols={['Image', 'Verdict', 'Reasons', 'Decision']} />
            <tbody>
              {shown.map((v) => (
                <tr key={v.image_id}>
                  <td>
                    <code>{v.image_id}</code>
                  </td>
                  <td>
                    {v.valid ? 'valid' : 'rejected'} <span class="muted small">({v.model})</span>
                    {v.class && (
                      <div class="small" data-testid="triage-class">
                        network: {v.class} p {Number(v.probability).toFixed(3)}
                        {v.orientation && v.orientation !== '0' && `, orientation ${v.orientation}`}
                      </div>
                    )}
                    {v.upright_blob && (
                      <div class="small">
                        <a href={`/api/v1/projects/${enc(projectId)}/triage/${enc(v.image_id)}/upright.png`} target="_blank" rel="noopener">
                          upright rendering
                        </a>
                      </div>
                    )}
                  </td>
                  <td>
                    {v.findings.length === 0 ? (
                      <span class="muted">none</span>
                    ) : (
                      <ul class="reasons">
                        {v.findings.map((f) => (
                          <li key={f.code}>
                            <strong>{f.code}</strong>: {f.reason}
                          </li>
                        ))}
                      </ul>
                    )}
                  </td>
                  <td>
                    {v.overruled !== null && (
                      <span>
                        {stands(v) ? 'kept' : 'rejected'} by {v.overruled_by}{' '}
                      </span>
                    )}
                    {v.overruled === null ? (
                      <button onClick={() => overrule(v.image_id, !v.valid)}>{v.valid ? 'Reject' : 'Keep'}</button>
                    ) : (
                      <button onClick={() => overrule(v.image_id, null)}>Undo</button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

function Export({ projectId }: { projectId: string }) {
  const [format, setFormat] = useState('vindr');
  const [jobs, setJobs] = useState<any[]>([]);
  const [error, fail, clear] = useError();
  const load = () =>
    get('/api/v1/jobs?limit=50')
      .then((r: any) => setJobs(r.jobs.filter((j: any) => j.project === projectId)))
      .catch(fail);
  useEffect(() => {
    load();
    const t = setInterval(load, 2000);
    return () => clearInterval(t);
  }, [projectId]);
  const start = async (kind: string, params: any) => {
    clear();
    try {
      await post('/api/v1/jobs', { kind, project: projectId, params });
      load();
    } catch (e) {
      fail(e);
    }
  };
  return (
    <section aria-label="Export">
      <ErrorLine error={error} />
      <div class="inline-form">
        <label>
          Format{' '}
          <select name="format" value={format} onChange={(e) => setFormat((e.target as HTMLSelectElement).value)}>
            <option value="vindr">VinDr-CXR annotations CSV (every label)</option>
            <option value="kaggle">Kaggle train.csv (its 15 classes only)</option>
          </select>
        </label>
        <button class="primary" data-testid="start-export" onClick={() => start('export_labels', { format })}>
          Export labels
        </button>
        <button onClick={() => start('fuse', { iou_thr: 0.4, quorum: 2 })}>Fuse readers (WBF, 2 readers)</button>
      </div>
      <p class="muted small">A versioned image dataset (DICOM, PNG, COCO, YOLO) is made with <code>radlab export</code> on the server (docs/dataset.md).</p>
      <table class="grid" aria-label="Jobs">
        <Head cols={['Job', 'State', 'Progress', 'Result']} />
        <tbody>
          {jobs.map((j) => (
            <tr key={j.job_id}>
              <td>
                {j.kind} <span class="muted small">{j.created_at.replace('T', ' ').slice(0, 19)}</span>
              </td>
              <td>{j.state}</td>
              <td>{j.state === 'failed' ? <span class="error">{j.message}</span> : j.total ? `${j.done} of ${j.total}` : j.message}</td>
              <td>
                {j.state === 'done' && j.kind !== 'import' ? (
                  <a href={`/api/v1/jobs/${enc(j.job_id)}/result`} download data-testid="download">
                    Download CSV
                  </a>
                ) : (
                  ''
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
