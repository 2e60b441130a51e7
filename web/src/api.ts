// The server's REST API (docs/server.md), from the page's own origin: the session cookie
// goes with every request, and every request that changes anything sends the session's
// CSRF token. Errors carry the server's `{error: {code, message}}`.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A request that never reached the server (offline, server down). */
export class NetworkError extends Error {}

let csrf = sessionStorage.getItem('radlab.csrf') ?? '';

/** The session's CSRF token, for requests made without `api` (form uploads). */
export const csrfToken = () => csrf;

export function setCsrf(token: string) {
  csrf = token;
  sessionStorage.setItem('radlab.csrf', token);
}

export async function api<T = any>(
  method: string,
  path: string,
  body?: unknown,
  init: RequestInit = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      ...init,
    });
  } catch (e) {
    throw new NetworkError(`the server could not be reached (${(e as Error).message})`);
  }
  const text = await res.text();
  let data: any = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!res.ok) {
    const err = data?.error;
    throw new ApiError(res.status, err?.code ?? 'http_' + res.status, err?.message ?? res.statusText);
  }
  return data as T;
}

export const get = <T = any>(path: string) => api<T>('GET', path);
export const post = <T = any>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const put = <T = any>(path: string, body?: unknown) => api<T>('PUT', path, body);
export const del = <T = any>(path: string) => api<T>('DELETE', path);

export const enc = encodeURIComponent;

// Shapes the pages use.
export interface User {
  user_id: string;
  username: string;
  site_role: 'admin' | 'user';
}

export interface SchemaLabel {
  name: string;
  scope: 'local' | 'image' | 'study' | 'breast';
  color: string;
  hotkey?: string;
  description?: string;
  parent?: string;
  export_id?: number;
  exclusive?: boolean;
}

export interface Schema {
  template?: string;
  labels: SchemaLabel[];
}

export interface Task {
  task_id: string;
  project_id: string;
  image_id: string;
  username: string;
  kind: 'reading' | 'review';
  state: 'NEW' | 'IN_PROGRESS' | 'SUBMITTED';
  study_instance_uid?: string;
  series_instance_uid?: string;
  sop_instance_uid?: string;
  dicomweb?: string;
  [k: string]: unknown;
}

export interface LayerAnnotation {
  annotation_id?: string;
  label: string;
  bbox?: [number, number, number, number] | null;
  note?: string;
}

export interface TaskAnnotations {
  task: Task;
  image: {
    image_id: string;
    columns: number | null;
    rows: number | null;
    study_instance_uid: string | null;
    series_instance_uid: string | null;
    sop_instance_uid: string | null;
    /** The image's WADO-RS instance path in the project's DICOMweb. */
    dicomweb: string | null;
  };
  version: number;
  annotations: LayerAnnotation[];
  comment: string | null;
  readers?: { reader: string; annotations: LayerAnnotation[] }[];
  /** The fused proposal: each box (or image label) with the readers who gave it. */
  proposal?: { label: string; bbox: [number, number, number, number] | null; score: number; readers: string[] }[];
}
