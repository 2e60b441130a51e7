// The task screen: the viewer, the labels, autosave and submit. A reading task edits the
// reader's own layer; a review task shows every reader's layer (one colour per reader, each
// toggleable) and the fused proposal (how many readers agree on each box), and edits the
// consensus. Every action has a key; `?` lists them.

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, enc, get, post, type Schema, type SchemaLabel, type TaskAnnotations, type User } from './api';
import { go } from './app';
import { type Box, type Doc, type SaveState, Autosave, History, fromAnnotations, newId, pendingOf } from './doc';
import { windowsFor, type Preset } from './presets';
import { loadImage, prefetchImage } from './viewer/load';
import { type BBox, type Shape, type Tool, type ViewState, Viewer } from './viewer/viewer';
import type { LoadedImage, Window } from './viewer/image';
import { nextTask } from './worklist';

declare global {
  interface Window {
    __radlab?: { firstImageMs?: number; readonly frames: number; viewer?: Viewer; taskId?: string; nextTaskId?: string };
  }
}

const READER_COLORS = ['#4fc3f7', '#ffb74d', '#ba68c8', '#81c784', '#f06292', '#fff176'];

export const SHORTCUTS: [string, string][] = [
  ['B', 'Box tool: drag to draw, drag a box to move it, its corners to resize'],
  ['W', 'Window tool: drag left/right for width, up/down for level'],
  ['P / Z', 'Pan / zoom tool'],
  ['Right drag · middle drag · wheel', 'Window · pan · zoom, whatever the tool'],
  ['Shift+1 … Shift+9', 'Window presets (the file’s, auto, lung, mediastinum, bone)'],
  ['I', 'Invert'],
  ['F · 1:1 is Shift+F', 'Fit to screen · one image pixel per screen pixel'],
  ['+ / −', 'Zoom in / out'],
  ['R / Shift+R', 'Rotate right / left'],
  ['H / V', 'Flip horizontally / vertically'],
  ['Escape', 'Reset the view (or close a menu, or deselect)'],
  ['1 … 9, 0', 'With a box selected: add or remove that label (the schema’s keys)'],
  ['L or Enter', 'Label menu for the selected box (type to filter)'],
  ['Tab / Shift+Tab', 'Select the next / previous box'],
  ['Delete', 'Delete the selected box'],
  ['N', 'Note for the selected box'],
  ['G', 'Go to the image labels'],
  ['C', 'Comment on the task'],
  ['Ctrl+Z / Ctrl+Shift+Z', 'Undo / redo'],
  ['Ctrl+Enter', 'Submit and open the next task'],
  ['Shift+A', 'Review: accept every proposed box and image label'],
  ['Alt+1 … Alt+9 · Alt+0', 'Review: show or hide a reader’s layer · the proposal'],
  ['Page Down / Page Up', 'The study’s next / previous image (the strip)'],
  ['?', 'This list'],
];

/** Whether a key goes into a text field (a ticked checkbox keeps the shortcuts working). */
function isTyping(e: KeyboardEvent) {
  const t = e.target as HTMLElement;
  if (t instanceof HTMLInputElement) return !['checkbox', 'radio', 'button', 'submit', 'color', 'range'].includes(t.type);
  return t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || t.isContentEditable;
}

const saveText: Record<SaveState, string> = {
  saved: 'All changes saved',
  saving: 'Saving…',
  unsaved: 'Saving soon…',
  offline: 'Offline: kept in this browser',
  error: 'Not saved',
  readonly: 'Read-only',
};

export function TaskPage({ taskId }: { taskId: string; user: User }) {
  const [data, setData] = useState<TaskAnnotations | null>(null);
  const [schema, setSchema] = useState<Schema | null>(null);
  const [presets, setPresets] = useState<Preset[] | undefined>(undefined);
  const [error, setError] = useState('');
  const [doc, setDoc] = useState<Doc>({ boxes: [], image: [], comment: '' });
  const [save, setSave] = useState<{ state: SaveState; message: string }>({ state: 'saved', message: '' });
  const [selected, setSelected] = useState<string | null>(null);
  const [draft, setDraft] = useState<BBox | null>(null);
  const [picker, setPicker] = useState<{ box: string | null } | null>(null);
  const [help, setHelp] = useState(false);
  const [hidden, setHidden] = useState<Record<string, boolean>>({});
  const [view, setView] = useState<ViewState | null>(null);
  const [cursor, setCursor] = useState<{ x: number; y: number; value?: number[] } | null>(null);
  const [tool, setTool] = useState<Tool>('box');
  const [windows, setWindows] = useState<Window[]>([]);
  const [imageError, setImageError] = useState('');
  const [busy, setBusy] = useState(false);
  // The study's other images (a lateral beside the PA), shown for comparison; only the
  // task's own image is labelled.
  const [study, setStudy] = useState<{ url: string; sop: string; number: number }[]>([]);
  const [shown, setShown] = useState<string | null>(null);
  const [notice, setNotice] = useState('');
  const host = useRef<HTMLDivElement>(null);
  const viewer = useRef<Viewer | null>(null);
  const history = useRef<History | null>(null);
  const saver = useRef<Autosave | null>(null);
  const docRef = useRef(doc);
  docRef.current = doc;
  // The status bar follows the viewer at most every 80 ms: a drag redraws the image at the
  // screen's rate, and re-rendering the panel with it would halve that rate.
  const throttled = useRef(new Throttle(80));

  const ownImage = !shown || shown === data?.image.dicomweb;
  const readonly = !data || data.task.state === 'SUBMITTED' || save.state === 'readonly' || !ownImage;
  const review = data?.task.kind === 'review';
  const labels = schema?.labels ?? [];
  const boxLabels = labels.filter((l) => l.scope === 'local');
  const imageLabels = labels.filter((l) => l.scope !== 'local');
  const colorOf = useMemo(() => {
    const m = new Map(labels.map((l) => [l.name, l.color]));
    return (name: string) => m.get(name) ?? '#ffffff';
  }, [schema]);

  // Load the task (starting it if new), the project's labels, and what this browser kept.
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        let d = await get<TaskAnnotations>(`/api/v1/tasks/${enc(taskId)}/annotations`);
        if (d.task.state === 'NEW') {
          await post(`/api/v1/tasks/${enc(taskId)}/start`);
          d = await get<TaskAnnotations>(`/api/v1/tasks/${enc(taskId)}/annotations`);
        }
        const p = await get<{ schema: Schema & { window_presets?: Preset[] } }>(`/api/v1/projects/${enc(d.task.project_id)}`);
        if (!live) return;
        let start = fromAnnotations(d.annotations, d.comment);
        const pending = pendingOf(taskId);
        const s = new Autosave(taskId, d.version, (state, message) => setSave({ state, message }));
        if (d.task.state === 'SUBMITTED') {
          s.clear();
          s.state = 'readonly';
        } else if (pending) {
          // Edits this browser kept and never got acknowledged: they are the newest.
          start = pending.doc;
          s.change(start);
          setNotice('Restored changes this browser had not sent yet; saving them now.');
        }
        saver.current = s;
        history.current = new History(start);
        setSchema(p.schema);
        setPresets(p.schema.window_presets);
        setDoc(start);
        setData(d);
        setSave({ state: s.state, message: '' });
      } catch (e) {
        setError(e instanceof ApiError && e.status === 404 ? 'This task does not exist or is not yours.' : (e as Error).message);
      }
    })();
    return () => {
      live = false;
      saver.current?.flush();
      saver.current?.dispose();
    };
  }, [taskId]);

  // The viewer lives as long as the page.
  useEffect(() => {
    const v = new Viewer(host.current!);
    viewer.current = v;
    // For tests and benchmarks: the viewer, and when the first image reached the screen.
    window.__radlab = {
      get frames() {
        return v.frames;
      },
      viewer: v,
      taskId,
    };
    return () => v.destroy();
  }, []);

  // The study's images, for the strip.
  useEffect(() => {
    const img = data?.image;
    if (!img?.dicomweb || !img.study_instance_uid) return;
    const root = img.dicomweb.split('/studies/')[0];
    fetch(`${root}/studies/${img.study_instance_uid}/instances?limit=100`, { headers: { Accept: 'application/dicom+json' } })
      .then((r) => (r.ok ? r.json() : []))
      .then((list: any[]) => {
        const items = list
          .map((i) => ({
            series: i['0020000E']?.Value?.[0] as string,
            sop: i['00080018']?.Value?.[0] as string,
            number: Number(i['00200013']?.Value?.[0] ?? 0),
          }))
          .filter((i) => i.series && i.sop)
          .map((i) => ({ url: `${root}/studies/${img.study_instance_uid}/series/${i.series}/instances/${i.sop}`, sop: i.sop, number: i.number }))
          .sort((a, b) => a.number - b.number);
        setStudy(items);
      })
      .catch(() => setStudy([]));
  }, [data]);

  // The image, then the next task's image in the background.
  useEffect(() => {
    if (!data) return;
    const url = shown ?? data.image.dicomweb ?? undefined;
    if (!url) {
      setImageError('The image of this task is not in the catalog any more.');
      return;
    }
    let live = true;
    loadImage(url)
      .then((img: LoadedImage) => {
        if (!live || !viewer.current) return;
        const ws = windowsFor(img, presets);
        setWindows(ws);
        viewer.current.setImage(img);
        viewer.current.render();
        window.__radlab!.firstImageMs = performance.now();
        nextTask(data.task.project_id, taskId)
          .then((t) => {
            if (!t?.dicomweb) return;
            prefetchImage(t.dicomweb);
            window.__radlab!.nextTaskId = t.task_id;
          })
          .catch(() => {});
      })
      .catch((e) => live && setImageError(e.message));
    return () => {
      live = false;
    };
  }, [data, shown]);

  const commit = (next: Doc, coalesce = false) => {
    if (readonly || !history.current) return;
    if (coalesce) history.current.current = next;
    else history.current.push(next);
    setDoc(next);
    saver.current?.change(next);
  };

  const updateBox = (id: string, f: (b: Box) => Box | null, coalesce = false) => {
    const d = docRef.current;
    const boxes = d.boxes.map((b) => (b.id === id ? f(b) : b)).filter((b): b is Box => b !== null);
    commit({ ...d, boxes }, coalesce);
  };

  const toggleBoxLabel = (id: string, label: string) => {
    updateBox(id, (b) => {
      if (b.labels.includes(label)) return b.labels.length > 1 ? { ...b, labels: b.labels.filter((l) => l !== label) } : b;
      return { ...b, labels: [...b.labels, label] };
    });
  };

  const pickLabel = (label: string) => {
    const d = docRef.current;
    const withoutNoFinding = d.image.filter((l) => !labels.find((x) => x.name === l)?.exclusive);
    if (picker?.box) {
      toggleBoxLabel(picker.box, label);
    } else if (draft) {
      const box: Box = { id: newId(), bbox: draft, labels: [label], note: '' };
      commit({ ...d, image: withoutNoFinding, boxes: [...d.boxes, box] });
      setSelected(box.id);
    }
    setDraft(null);
    setPicker(null);
    viewer.current?.el.focus();
  };

  const toggleImageLabel = (l: SchemaLabel) => {
    const d = docRef.current;
    if (d.image.includes(l.name)) return commit({ ...d, image: d.image.filter((x) => x !== l.name) });
    if (l.exclusive) {
      if (d.boxes.length) {
        setNotice(`“${l.name}” excludes every other label: delete the boxes first.`);
        return;
      }
      return commit({ ...d, image: [l.name] });
    }
    commit({ ...d, image: [...d.image.filter((x) => !labels.find((y) => y.name === x)?.exclusive), l.name] });
  };

  const undo = () => {
    if (readonly || !history.current?.undo()) return;
    setDoc(history.current.current);
    saver.current?.change(history.current.current);
  };
  const redo = () => {
    if (readonly || !history.current?.redo()) return;
    setDoc(history.current.current);
    saver.current?.change(history.current.current);
  };

  const submit = async () => {
    if (!data || readonly || busy) return;
    setBusy(true);
    try {
      await saver.current?.flush();
      if (saver.current?.hasUnsent || saver.current?.state !== 'saved') {
        setNotice('Not submitted: the annotations are not saved yet. Check the connection and try again.');
        return;
      }
      await post(`/api/v1/tasks/${enc(taskId)}/submit`);
      saver.current?.clear();
      const next = await nextTask(data.task.project_id, taskId);
      if (next) go(`tasks/${next.task_id}`);
      else go('');
    } catch (e) {
      setNotice((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  // Review: proposal boxes accepted into the consensus.
  const proposal = data?.proposal ?? [];
  const hasBox = (label: string, bbox: BBox | null | undefined) =>
    bbox ? doc.boxes.some((b) => b.labels.includes(label) && sameBox(b.bbox, bbox)) : doc.image.includes(label);
  const accept = (items: { label: string; bbox: BBox | null }[]) => {
    const d = docRef.current;
    const boxes = [...d.boxes];
    const image = [...d.image];
    for (const p of items) {
      if (!p.bbox) {
        // An image label the readers agree on.
        const l = labels.find((x) => x.name === p.label);
        if (!image.includes(p.label) && (!l?.exclusive || (boxes.length === 0 && items.every((i) => !i.bbox)))) image.push(p.label);
        continue;
      }
      const pb = p.bbox;
      if (boxes.some((b) => b.labels.includes(p.label) && sameBox(b.bbox, pb))) continue;
      const bbox = pb.map((v) => Math.round(v * 10) / 10) as BBox;
      const same = boxes.find((b) => sameBox(b.bbox, bbox));
      if (same) boxes[boxes.indexOf(same)] = { ...same, labels: [...same.labels, p.label] };
      else boxes.push({ id: newId(), bbox, labels: [p.label], note: '' });
    }
    const exclusive = (x: string) => !!labels.find((y) => y.name === x)?.exclusive;
    commit({ ...d, image: boxes.length || image.some((x) => !exclusive(x)) ? image.filter((x) => !exclusive(x)) : image, boxes });
  };

  // What the viewer draws.
  useEffect(() => {
    const v = viewer.current;
    if (!v) return;
    const shapes: Shape[] = [];
    if (!ownImage) {
      v.setShapes([]);
      v.setEvents({ onCursor: (c) => throttled.current.set('cursor', () => setCursor(c)), onView: (w) => throttled.current.set('view', () => setView(w)) });
      return;
    }
    if (review && data?.readers) {
      data.readers.forEach((r, i) => {
        if (hidden[`reader:${r.reader}`] ?? false) return;
        const color = READER_COLORS[i % READER_COLORS.length];
        r.annotations.forEach((a, j) => {
          if (a.bbox) shapes.push({ id: `r${i}-${j}`, bbox: a.bbox, color, text: `${r.reader}: ${a.label}`, dashed: true, textBelow: i % 2 === 1 });
        });
      });
      if (!hidden['proposal']) {
        proposal.forEach((p, j) => {
          if (p.bbox && !hasBox(p.label, p.bbox))
            shapes.push({ id: `p${j}`, bbox: p.bbox, color: '#ffffff', text: `${p.label} · ${p.readers.length} of ${data.readers!.length}`, dashed: true, textBelow: true });
        });
      }
    }
    if (!hidden['own']) {
      for (const b of doc.boxes) {
        shapes.push({
          id: b.id,
          bbox: b.bbox,
          color: colorOf(b.labels[0]),
          text: b.labels.join(', ') + (b.note ? ' ✎' : ''),
          editable: !readonly,
          selected: b.id === selected,
        });
      }
    }
    if (draft) shapes.push({ id: '__draft', bbox: draft, color: '#ffd400', text: 'choose a label', selected: true });
    v.setShapes(shapes);
    v.tool = tool;
    v.setEvents({
      onCreate: (bbox) => {
        if (readonly) return;
        setDraft(bbox);
        setSelected(null);
        setPicker({ box: null });
      },
      onModify: (id, bbox) => updateBox(id, (b) => ({ ...b, bbox })),
      onSelect: (id) => {
        setSelected(id);
        if (picker && !picker.box) {
          setDraft(null);
          setPicker(null);
        }
      },
      onCursor: (c) => throttled.current.set('cursor', () => setCursor(c)),
      onView: (v) => throttled.current.set('view', () => setView(v)),
    });
  }, [doc, data, hidden, selected, draft, readonly, tool, schema, picker, ownImage]);

  // The keyboard (registered before the browser paints, so a key pressed as soon as
  // something shows reaches the handler that goes with it).
  useLayoutEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const v = viewer.current;
      if (e.key === 'Escape') {
        if (help) return setHelp(false);
        if (picker) {
          setPicker(null);
          setDraft(null);
          return;
        }
        if (isTyping(e)) return (e.target as HTMLElement).blur();
        if (selected) return setSelected(null);
        return v?.reset();
      }
      if (picker && !isTyping(e) && /^[0-9]$/.test(e.key)) {
        const l = boxLabels.find((x) => x.hotkey === e.key);
        if (l) pickLabel(l.name);
        return;
      }
      if (isTyping(e) || picker) return;
      const ctrl = e.ctrlKey || e.metaKey;
      if (ctrl && e.key.toLowerCase() === 'z') {
        e.preventDefault();
        return e.shiftKey ? redo() : undo();
      }
      if (ctrl && e.key.toLowerCase() === 'y') {
        e.preventDefault();
        return redo();
      }
      if (ctrl && e.key === 'Enter') {
        e.preventDefault();
        return submit();
      }
      if (e.altKey && review && data?.readers && /^Digit[0-9]$/.test(e.code)) {
        // Alt+1..9: a reader's layer; Alt+0: the proposal.
        e.preventDefault();
        const n = Number(e.code.slice(5));
        const key = n === 0 ? 'proposal' : data.readers[n - 1] ? `reader:${data.readers[n - 1].reader}` : '';
        if (key) setHidden({ ...hidden, [key]: !hidden[key] });
        return;
      }
      if ((e.key === 'PageDown' || e.key === 'PageUp') && study.length > 1) {
        e.preventDefault();
        const own = data?.image.dicomweb;
        const at = study.findIndex((i) => i.url === (shown ?? own));
        const next = study[(at + (e.key === 'PageDown' ? 1 : study.length - 1)) % study.length];
        setShown(next.url === own ? null : next.url);
        return;
      }
      if (ctrl || e.altKey) return;
      if (e.shiftKey && /^Digit[1-9]$/.test(e.code)) {
        const w = windows[Number(e.code.slice(5)) - 1];
        if (w) v?.setWindow(w);
        return;
      }
      const k = e.key;
      if (selected && /^[0-9]$/.test(k)) {
        const l = boxLabels.find((x) => x.hotkey === k);
        if (l) toggleBoxLabel(selected, l.name);
        return;
      }
      switch (k) {
        case '?':
          return setHelp(true);
        case 'b':
        case 'B':
          return setTool('box');
        case 'w':
        case 'W':
          return setTool('wl');
        case 'p':
        case 'P':
          return setTool('pan');
        case 'z':
        case 'Z':
          return setTool('zoom');
        case 'i':
        case 'I':
          return v?.toggleInvert();
        case 'f':
          return v?.fit();
        case 'F':
          return v?.oneToOne();
        case '+':
        case '=':
          return v?.zoomBy(1.25);
        case '-':
          return v?.zoomBy(0.8);
        case 'r':
          return v?.rotate(1);
        case 'R':
          return v?.rotate(-1);
        case 'h':
        case 'H':
          return v?.flip(true);
        case 'v':
        case 'V':
          return v?.flip(false);
        case 'Delete':
        case 'Backspace':
          if (selected) {
            updateBox(selected, () => null);
            setSelected(null);
          }
          return;
        case 'l':
        case 'L':
        case 'Enter':
          if (selected && !readonly) {
            e.preventDefault();
            setPicker({ box: selected });
          }
          return;
        case 'Tab': {
          e.preventDefault();
          const bs = docRef.current.boxes;
          if (!bs.length) return;
          const i = bs.findIndex((b) => b.id === selected);
          const n = e.shiftKey ? (i <= 0 ? bs.length - 1 : i - 1) : (i + 1) % bs.length;
          return setSelected(bs[n].id);
        }
        case 'n':
        case 'N':
          if (selected) {
            e.preventDefault();
            (document.getElementById(`note-${selected}`) as HTMLInputElement | null)?.focus();
          }
          return;
        case 'g':
        case 'G':
          e.preventDefault();
          return (document.querySelector('.image-labels input') as HTMLInputElement | null)?.focus();
        case 'c':
        case 'C':
          e.preventDefault();
          return document.getElementById('task-comment')?.focus();
        case 'A':
          if (review) accept(proposal);
          return;
      }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, [selected, picker, help, windows, readonly, review, data, doc, schema, hidden, study, shown]);

  // Leaving with changes the server has not acknowledged: the browser asks first (they are
  // kept in this browser either way).
  useEffect(() => {
    const before = (e: BeforeUnloadEvent) => {
      if (saver.current?.hasUnsent) {
        e.preventDefault();
      }
    };
    addEventListener('beforeunload', before);
    return () => removeEventListener('beforeunload', before);
  }, []);

  if (error)
    return (
      <main class="page">
        <p class="error" role="alert">
          {error}
        </p>
        <a href="#/">Back to the worklist</a>
      </main>
    );

  const selectedBox = doc.boxes.find((b) => b.id === selected);
  const w = view?.window;
  return (
    <main class="task" aria-label="Task">
      <section class="viewer-column">
        <div class="viewer-toolbar" role="toolbar" aria-label="Viewer">
          {(
            [
              ['box', 'Box', 'B'],
              ['wl', 'Window', 'W'],
              ['pan', 'Pan', 'P'],
              ['zoom', 'Zoom', 'Z'],
            ] as [Tool, string, string][]
          ).map(([t, name, key]) => (
            <button key={t} class={tool === t ? 'tool active' : 'tool'} aria-pressed={tool === t} title={`${name} (${key})`} onClick={() => setTool(t)}>
              {name}
            </button>
          ))}
          <span class="sep" />
          <label class="presets">
            <span class="sr-only">Window preset</span>
            <select
              aria-label="Window preset"
              data-testid="window-preset"
              value=""
              onChange={(e) => {
                const i = Number((e.target as HTMLSelectElement).value);
                if (windows[i]) viewer.current?.setWindow(windows[i]);
                (e.target as HTMLSelectElement).value = '';
              }}
            >
              <option value="">Window…</option>
              {windows.map((w, i) => (
                <option key={i} value={i}>
                  {`${w.name ?? 'Window'} (Shift+${i + 1})`}
                </option>
              ))}
            </select>
          </label>
          <button class="tool" title="Invert (I)" onClick={() => viewer.current?.toggleInvert()}>
            Invert
          </button>
          <button class="tool" title="Fit (F)" onClick={() => viewer.current?.fit()}>
            Fit
          </button>
          <button class="tool" title="1:1 (Shift+F)" onClick={() => viewer.current?.oneToOne()}>
            1:1
          </button>
          <button class="tool" title="Rotate right (R)" onClick={() => viewer.current?.rotate(1)}>
            ⟳
          </button>
          <button class="tool" title="Flip horizontally (H)" onClick={() => viewer.current?.flip(true)}>
            ⇋
          </button>
          <button class="tool" title="Flip vertically (V)" onClick={() => viewer.current?.flip(false)}>
            ⇵
          </button>
          <button class="tool" title="Reset (Escape)" onClick={() => viewer.current?.reset()}>
            Reset
          </button>
          <span class="spacer" />
          <button class="tool" title="Keyboard shortcuts (?)" onClick={() => setHelp(true)}>
            ?
          </button>
        </div>
        {study.length > 1 && (
          <nav class="strip" aria-label="Images of the study">
            {study.map((i) => {
              const own = i.url === data?.image.dicomweb;
              const active = (shown ?? data?.image.dicomweb) === i.url;
              return (
                <button key={i.sop} class={active ? 'thumb active' : 'thumb'} aria-pressed={active} title={own ? 'The image of this task' : 'Another image of the study (view only)'} onClick={() => setShown(own ? null : i.url)}>
                  <img src={`${i.url}/thumbnail?viewport=96,96`} alt={own ? 'this task' : `image ${i.number || ''}`} width={96} height={96} loading="lazy" />
                  <span>{own ? 'task' : `#${i.number || ''}`}</span>
                </button>
              );
            })}
          </nav>
        )}
        {!ownImage && <p class="notice view-only">Another image of the study, for comparison: labels go on the task’s own image (the thumbnail marked “task”).</p>}
        <div class="viewer-host" ref={host}>
          {imageError && (
            <p class="error viewer-error" role="alert">
              {imageError}
            </p>
          )}
          {picker && (
            <LabelPicker
              right={pickerOnRight(viewer.current, picker.box ? doc.boxes.find((b) => b.id === picker.box)?.bbox : draft)}
              labels={boxLabels}
              current={picker.box ? doc.boxes.find((b) => b.id === picker.box)?.labels ?? [] : []}
              onPick={pickLabel}
              onCancel={() => {
                setPicker(null);
                setDraft(null);
              }}
            />
          )}
        </div>
        <div class="statusbar" aria-live="off" data-testid="statusbar">
          <span data-testid="wl">{w ? `W ${fmt(w.width)} L ${fmt(w.center)}${w.name ? ` (${w.name})` : ''}` : ''}</span>
          <span>{view ? `Zoom ${Math.round(view.scale * 100)}%` : ''}</span>
          <span>{view && (view.rotation || view.flipH || view.flipV || view.invert) ? `${view.rotation}°${view.flipH ? ' flipped H' : ''}${view.flipV ? ' flipped V' : ''}${view.invert ? ' inverted' : ''}` : ''}</span>
          <span data-testid="cursor">{cursor && cursor.value ? `x ${Math.floor(cursor.x)} y ${Math.floor(cursor.y)} · value ${cursor.value.map(fmt).join(', ')}` : ''}</span>
        </div>
      </section>
      <aside class="side" aria-label="Labels">
        <div class={`save save-${save.state}`} role="status" data-testid="save-state" title={save.message}>
          {saveText[save.state]}
        </div>
        {notice && (
          <p class="notice" role="alert">
            {notice}{' '}
            <button class="link" onClick={() => setNotice('')}>
              Dismiss
            </button>
          </p>
        )}
        <h2>
          {review ? 'Review' : 'Reading'} <span class="muted small">{data?.task.project_id}</span>
        </h2>
        {data?.task.state === 'SUBMITTED' && <p class="muted">Submitted: read-only.</p>}
        {review && data?.readers && (
          <section aria-label="Layers">
            <h3>Layers</h3>
            <ul class="layers">
              {data.readers.map((r, i) => (
                <li key={r.reader}>
                  <label>
                    <input type="checkbox" checked={!hidden[`reader:${r.reader}`]} onChange={() => setHidden({ ...hidden, [`reader:${r.reader}`]: !hidden[`reader:${r.reader}`] })} />
                    <span class="swatch" style={{ background: READER_COLORS[i % READER_COLORS.length] }} /> {r.reader} ({r.annotations.filter((a) => a.bbox).length} boxes
                    {r.annotations.filter((a) => !a.bbox).length ? `; ${r.annotations.filter((a) => !a.bbox).map((a) => a.label).join(', ')}` : ''})
                  </label>
                </li>
              ))}
              <li>
                <label>
                  <input type="checkbox" checked={!hidden['proposal']} onChange={() => setHidden({ ...hidden, proposal: !hidden['proposal'] })} />
                  <span class="swatch" style={{ background: '#fff' }} /> Fused proposal
                </label>
              </li>
              <li>
                <label>
                  <input type="checkbox" checked={!hidden['own']} onChange={() => setHidden({ ...hidden, own: !hidden['own'] })} />
                  <span class="swatch" style={{ background: '#ffd400' }} /> Consensus (yours)
                </label>
              </li>
            </ul>
            <h3>Proposal</h3>
            {proposal.length === 0 && <p class="muted small">No box reached the quorum.</p>}
            <ul class="proposal" data-testid="proposal">
              {proposal.map((p, j) => (
                <li key={j}>
                  <span class="swatch" style={{ background: colorOf(p.label) }} /> {p.label}
                  {p.bbox ? '' : ' (image)'}{' '}
                  <span class="muted" title={p.readers.join(', ')}>
                    · {p.readers.length} of {data.readers!.length} readers
                  </span>{' '}
                  {hasBox(p.label, p.bbox) ? (
                    <span class="ok">accepted</span>
                  ) : (
                    <button class="small" disabled={readonly} onClick={() => accept([p])}>
                      Accept
                    </button>
                  )}
                </li>
              ))}
            </ul>
            <button disabled={readonly || proposal.every((p) => hasBox(p.label, p.bbox))} onClick={() => accept(proposal)} data-testid="accept-all">
              Accept all (Shift+A)
            </button>
          </section>
        )}
        <section aria-label="Boxes">
          <h3>Boxes ({doc.boxes.length})</h3>
          {doc.boxes.length === 0 && <p class="muted small">Drag on the image to draw a box (B).</p>}
          <ul class="boxes" data-testid="boxes">
            {doc.boxes.map((b) => (
              <li key={b.id} class={b.id === selected ? 'selected' : ''} onClick={() => setSelected(b.id)}>
                <div class="box-labels">
                  {b.labels.map((l) => (
                    <span class="chip" key={l} style={{ borderColor: colorOf(l) }}>
                      {l}
                      {!readonly && b.labels.length > 1 && (
                        <button class="chip-x" aria-label={`Remove ${l}`} onClick={(e) => (e.stopPropagation(), toggleBoxLabel(b.id, l))}>
                          ×
                        </button>
                      )}
                    </span>
                  ))}
                  {!readonly && (
                    <button class="small" onClick={(e) => (e.stopPropagation(), setSelected(b.id), setPicker({ box: b.id }))}>
                      + label
                    </button>
                  )}
                  {!readonly && (
                    <button class="small danger" aria-label="Delete box" onClick={(e) => (e.stopPropagation(), updateBox(b.id, () => null), setSelected(null))}>
                      Delete
                    </button>
                  )}
                </div>
                {b.id === selected && (
                  <input
                    id={`note-${b.id}`}
                    class="note"
                    placeholder="Note (N)"
                    aria-label="Note"
                    value={b.note}
                    disabled={readonly}
                    onInput={(e) => updateBox(b.id, (x) => ({ ...x, note: (e.target as HTMLInputElement).value }), true)}
                  />
                )}
              </li>
            ))}
          </ul>
        </section>
        <section aria-label="Image labels" class="image-labels">
          <h3>Image labels (G)</h3>
          {imageLabels.map((l) => (
            <label key={l.name} class="check">
              <input type="checkbox" checked={doc.image.includes(l.name)} disabled={readonly} onChange={() => toggleImageLabel(l)} />
              <span class="swatch" style={{ background: l.color }} />
              {l.name}
              {l.exclusive ? <span class="muted small"> (alone)</span> : ''}
            </label>
          ))}
        </section>
        <section aria-label="Comment">
          <label class="block">
            <h3>Comment (C)</h3>
            <textarea
              id="task-comment"
              rows={2}
              value={doc.comment}
              disabled={readonly}
              onInput={(e) => commit({ ...docRef.current, comment: (e.target as HTMLTextAreaElement).value }, true)}
            />
          </label>
        </section>
        <div class="actions">
          <button onClick={undo} disabled={readonly || !history.current?.canUndo} title="Ctrl+Z">
            Undo
          </button>
          <button onClick={redo} disabled={readonly || !history.current?.canRedo} title="Ctrl+Shift+Z">
            Redo
          </button>
          <span class="spacer" />
          <button class="primary" onClick={submit} disabled={readonly || busy} data-testid="submit" title="Ctrl+Enter">
            {review ? 'Submit consensus' : 'Submit'}
          </button>
        </div>
        {selectedBox && <p class="muted small">Selected: {selectedBox.labels.join(', ')} · {selectedBox.bbox.map((v) => Math.round(v)).join(', ')}</p>}
      </aside>
      {help && <Shortcuts onClose={() => setHelp(false)} />}
    </main>
  );
}

/** Runs the latest function given under each key at most once per `ms`. */
class Throttle {
  private pending = new Map<string, () => void>();
  private timer = 0;
  constructor(private ms: number) {}
  set(key: string, f: () => void) {
    this.pending.set(key, f);
    if (this.timer) return;
    this.timer = window.setTimeout(() => {
      this.timer = 0;
      const fs = [...this.pending.values()];
      this.pending.clear();
      for (const g of fs) g();
    }, this.ms);
  }
}

/** Boxes are kept to a tenth of a pixel: the same box at that precision. */
function sameBox(a: BBox, b: BBox) {
  return a.every((v, i) => Math.round(v * 10) === Math.round(b[i] * 10));
}

function fmt(v: number) {
  return Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(2);
}

/** The label menu goes on the side of the viewport away from the box it labels. */
function pickerOnRight(v: Viewer | null, bbox: BBox | null | undefined) {
  if (!v || !bbox) return false;
  const [x] = v.toScreen((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2);
  return x < v.el.clientWidth / 2;
}

function LabelPicker({ labels, current, onPick, onCancel, right }: { labels: SchemaLabel[]; current: string[]; onPick: (l: string) => void; onCancel: () => void; right: boolean }) {
  const [q, setQ] = useState('');
  const [i, setI] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  useLayoutEffect(() => input.current?.focus(), []);
  const shown = labels.filter((l) => l.name.toLowerCase().includes(q.toLowerCase()));
  const key = (e: KeyboardEvent) => {
    if (/^[0-9]$/.test(e.key)) {
      const l = labels.find((x) => x.hotkey === e.key);
      e.preventDefault();
      if (l) onPick(l.name);
    } else if (e.key === 'ArrowDown') {
      e.preventDefault();
      setI(Math.min(i + 1, shown.length - 1));
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      setI(Math.max(i - 1, 0));
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (shown[i]) onPick(shown[i].name);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      onCancel();
    }
  };
  return (
    <div class={right ? 'picker right' : 'picker'} role="dialog" aria-label="Choose a label">
      <input
        ref={input}
        placeholder="Type to filter, 0–9 for the keys, Enter"
        aria-label="Filter labels"
        value={q}
        onInput={(e) => {
          setQ((e.target as HTMLInputElement).value);
          setI(0);
        }}
        onKeyDown={key}
      />
      <ul role="listbox" aria-label="Labels">
        {shown.map((l, j) => (
          <li key={l.name} role="option" aria-selected={j === i} class={j === i ? 'hl' : ''} onMouseDown={(e) => (e.preventDefault(), onPick(l.name))}>
            <span class="swatch" style={{ background: l.color }} />
            <span class="name">{l.name}</span>
            {current.includes(l.name) && <span class="ok small">on the box</span>}
            {l.hotkey && <kbd>{l.hotkey}</kbd>}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Shortcuts({ onClose }: { onClose: () => void }) {
  return (
    <div class="modal-back" onClick={onClose}>
      <div class="modal" role="dialog" aria-label="Keyboard shortcuts" onClick={(e) => e.stopPropagation()}>
        <h2>Keyboard shortcuts</h2>
        <table class="grid">
          <tbody>
            {SHORTCUTS.map(([k, d]) => (
              <tr key={k}>
                <td>
                  <kbd>{k}</kbd>
                </td>
                <td>{d}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <button class="primary" onClick={onClose} autofocus>
          Close (Escape)
        </button>
      </div>
    </div>
  );
}
