// A reading (or a consensus) as the reader edits it: boxes, each with one or more labels
// and a note, the image-level labels ticked, and a comment; undo and redo over whole
// states; and the autosave that keeps it on the server.
//
// Never losing work: every change is written to localStorage at once (with the server
// version it was based on), then sent (PUT .../annotations with that version) after a short
// pause. A change that cannot be sent (offline, server down) stays there and is sent again
// on reconnect, every few seconds, and when the task is opened again (a closed tab, a
// crash), on top of whatever the server has.

import { ApiError, NetworkError, put, type LayerAnnotation } from './api';
import type { BBox } from './viewer/viewer';

export interface Box {
  id: string;
  bbox: BBox;
  labels: string[];
  note: string;
}

export interface Doc {
  boxes: Box[];
  image: string[];
  comment: string;
}

export type SaveState = 'saved' | 'saving' | 'unsaved' | 'offline' | 'error' | 'readonly';

let seq = 0;
export const newId = () => `b${Date.now().toString(36)}${(seq++).toString(36)}`;

const key = (b: BBox) => b.map((v) => Math.round(v * 10) / 10).join(',');

/** The server's annotations as boxes: annotations with the same box are one box with several labels. */
export function fromAnnotations(anns: LayerAnnotation[], comment: string | null): Doc {
  const boxes: Box[] = [];
  const byKey = new Map<string, Box>();
  const image: string[] = [];
  for (const a of anns) {
    if (a.bbox) {
      const k = key(a.bbox);
      let b = byKey.get(k);
      if (!b) {
        b = { id: newId(), bbox: [...a.bbox] as BBox, labels: [], note: a.note ?? '' };
        byKey.set(k, b);
        boxes.push(b);
      }
      if (!b.labels.includes(a.label)) b.labels.push(a.label);
      if (!b.note && a.note) b.note = a.note;
    } else if (!image.includes(a.label)) {
      image.push(a.label);
    }
  }
  return { boxes, image, comment: comment ?? '' };
}

export function toAnnotations(doc: Doc): LayerAnnotation[] {
  const out: LayerAnnotation[] = [];
  for (const b of doc.boxes) for (const l of b.labels) out.push({ label: l, bbox: b.bbox, note: b.note });
  for (const l of doc.image) out.push({ label: l });
  return out;
}

export class History {
  private past: Doc[] = [];
  private future: Doc[] = [];
  constructor(public current: Doc) {}
  push(next: Doc) {
    this.past.push(this.current);
    if (this.past.length > 200) this.past.shift();
    this.future = [];
    this.current = next;
  }
  undo(): boolean {
    const d = this.past.pop();
    if (!d) return false;
    this.future.push(this.current);
    this.current = d;
    return true;
  }
  redo(): boolean {
    const d = this.future.pop();
    if (!d) return false;
    this.past.push(this.current);
    this.current = d;
    return true;
  }
  get canUndo() {
    return this.past.length > 0;
  }
  get canRedo() {
    return this.future.length > 0;
  }
}

interface Pending {
  base: number;
  doc: Doc;
  at: number;
}

const storeKey = (task: string) => `radlab.pending.${task}`;

export function pendingOf(task: string): Pending | undefined {
  try {
    const raw = localStorage.getItem(storeKey(task));
    return raw ? (JSON.parse(raw) as Pending) : undefined;
  } catch {
    return undefined;
  }
}

export class Autosave {
  state: SaveState = 'saved';
  message = '';
  private timer = 0;
  private inflight = false;
  private dirty = false;
  private retry = 0;
  private doc?: Doc;

  constructor(
    private task: string,
    public version: number,
    private onState: (s: SaveState, message: string) => void,
    private delay = 500,
  ) {
    addEventListener('online', this.flushSoon);
  }

  dispose() {
    removeEventListener('online', this.flushSoon);
    clearTimeout(this.timer);
  }

  private set(s: SaveState, message = '') {
    this.state = s;
    this.message = message;
    this.onState(s, message);
  }

  /** A new state of the document: kept locally now, sent shortly. */
  change(doc: Doc) {
    if (this.state === 'readonly') return;
    this.doc = doc;
    this.dirty = true;
    try {
      localStorage.setItem(storeKey(this.task), JSON.stringify({ base: this.version, doc, at: Date.now() } satisfies Pending));
    } catch {
      /* storage full or disabled: the server copy is all there is */
    }
    if (this.state !== 'offline') this.set('unsaved');
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.flush(), this.delay);
  }

  private flushSoon = () => {
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.flush(), 50);
  };

  get hasUnsent() {
    return this.dirty || this.inflight;
  }

  /** Send what is not on the server yet. Resolves once it is there, or failed. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    if (this.inflight || !this.dirty || !this.doc) return;
    this.inflight = true;
    this.dirty = false;
    const doc = this.doc;
    this.set('saving');
    try {
      const r = await put<{ version: number }>(`/api/v1/tasks/${encodeURIComponent(this.task)}/annotations`, {
        version: this.version,
        annotations: toAnnotations(doc),
        comment: doc.comment,
      });
      this.version = r.version;
      this.retry = 0;
      if (!this.dirty) {
        localStorage.removeItem(storeKey(this.task));
        this.set('saved');
      } else {
        localStorage.setItem(storeKey(this.task), JSON.stringify({ base: this.version, doc: this.doc, at: Date.now() }));
      }
    } catch (e) {
      this.dirty = true;
      if (e instanceof NetworkError || (e instanceof ApiError && e.status >= 500)) {
        this.set('offline', 'not saved yet: kept in this browser, sent again on reconnect');
        this.retry = Math.min(this.retry + 1, 5);
        this.timer = window.setTimeout(() => this.flush(), 1000 * 2 ** this.retry);
      } else if (e instanceof ApiError && e.code === 'stale') {
        // This layer is this reader's alone: another tab of theirs wrote it. Their latest
        // edit here wins; the server's version is taken as the new base.
        const m = /now (\d+)/.exec(e.message);
        if (m) this.version = Number(m[1]);
        this.timer = window.setTimeout(() => this.flush(), 50);
      } else if (e instanceof ApiError && (e.code === 'task_submitted' || e.status === 404)) {
        localStorage.removeItem(storeKey(this.task));
        this.set('readonly', e.message);
      } else {
        this.set('error', (e as Error).message);
      }
    } finally {
      this.inflight = false;
    }
    if (this.dirty && (this.state === 'saving' || this.state === 'unsaved')) await this.flush();
  }

  /** Forget what this browser kept (the task was submitted). */
  clear() {
    localStorage.removeItem(storeKey(this.task));
  }
}
