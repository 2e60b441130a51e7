// Images from the project's DICOMweb: the instance's metadata (WADO-RS, DICOM JSON) and its
// first frame decoded by the server (application/octet-stream: stored values, Explicit VR
// Little Endian). Kept in memory for the few images around the current one, and fetched
// ahead for the next task, so that moving to the next image is a lookup.

import { type LoadedImage, imageInfo, storedValues } from './image';

const cache = new Map<string, Promise<LoadedImage>>();
const KEEP = 4;

async function fetchImage(instanceUrl: string, frame: number, signal?: AbortSignal): Promise<LoadedImage> {
  const [metaRes, frameRes] = await Promise.all([
    fetch(`${instanceUrl}/metadata`, { headers: { Accept: 'application/dicom+json' }, credentials: 'same-origin', signal }),
    fetch(`${instanceUrl}/frames/${frame}`, {
      headers: { Accept: 'application/octet-stream' },
      credentials: 'same-origin',
      signal,
    }),
  ]);
  for (const r of [metaRes, frameRes]) {
    if (!r.ok) {
      let msg = r.statusText;
      try {
        msg = (await r.json()).error?.message ?? msg;
      } catch {
        /* not JSON */
      }
      throw new Error(`the image could not be loaded (${r.status}): ${msg}`);
    }
  }
  const [meta] = await metaRes.json();
  const info = imageInfo(meta);
  return storedValues(info, await frameRes.arrayBuffer());
}

/** The image at `instanceUrl` (WADO-RS instance path), frame `frame` (1-based). */
export function loadImage(instanceUrl: string, frame = 1): Promise<LoadedImage> {
  const key = `${instanceUrl}#${frame}`;
  let p = cache.get(key);
  if (p) {
    // Most recently used last.
    cache.delete(key);
    cache.set(key, p);
    return p;
  }
  p = fetchImage(instanceUrl, frame);
  p.catch(() => cache.delete(key));
  cache.set(key, p);
  while (cache.size > KEEP) cache.delete(cache.keys().next().value!);
  return p;
}

/** Start loading an image the reader is likely to open next. */
export function prefetchImage(instanceUrl: string) {
  loadImage(instanceUrl).catch(() => {});
}
