// One greyscale frame in the browser: its stored values (decoded by the server, WADO-RS
// frames as application/octet-stream), its display attributes from the WADO-RS metadata,
// and the display pipeline of PS3.3 C.11 exactly as the server's renderer applies it
// (radlab-dicom display.rs): Modality LUT (rescale), a VOI window (LINEAR, LINEAR_EXACT,
// SIGMOID), MONOCHROME1 inverted after the VOI, truncated to 8 bits. The same window gives
// the same grey as `.../rendered?window=` and as dcmtk's dcmj2pnm.

export type VoiFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

export interface Window {
  center: number;
  width: number;
  fn?: VoiFunction;
  name?: string;
}

export interface ImageInfo {
  rows: number;
  columns: number;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
  samplesPerPixel: number;
  photometric: string;
  slope: number;
  intercept: number;
  windows: Window[];
  padding?: number;
  pixelSpacing?: [number, number];
  frames: number;
  presentationInverse: boolean;
  description: string;
  modality: string;
}

export interface LoadedImage {
  info: ImageInfo;
  /** Stored values, one per pixel (greyscale) or three (RGB). */
  pixels: Uint16Array | Int16Array | Uint8Array;
  /** Smallest and largest stored values. */
  min: number;
  max: number;
  /** Halved copies for display when the image is shown smaller than half size. */
  levels: { scale: number; width: number; height: number; pixels: Float32Array }[];
}

type Json = Record<string, { vr: string; Value?: any[] }>;

function first(meta: Json, tag: string): any {
  return meta[tag]?.Value?.[0];
}

function nums(meta: Json, tag: string): number[] {
  return (meta[tag]?.Value ?? []).map(Number).filter((x: number) => Number.isFinite(x));
}

/** The display attributes of an instance's DICOM JSON metadata. */
export function imageInfo(meta: Json): ImageInfo {
  const centers = nums(meta, '00281050');
  const widths = nums(meta, '00281051');
  const expl: string[] = meta['00281055']?.Value ?? [];
  const fnName = String(first(meta, '00281056') ?? 'LINEAR').trim().toUpperCase();
  const fn: VoiFunction = fnName === 'SIGMOID' ? 'SIGMOID' : fnName === 'LINEAR_EXACT' ? 'LINEAR_EXACT' : 'LINEAR';
  const windows: Window[] = [];
  for (let i = 0; i < Math.min(centers.length, widths.length); i++) {
    if (widths[i] > 0) windows.push({ center: centers[i], width: widths[i], fn, name: expl[i] || `File ${i + 1}` });
  }
  const spacing = nums(meta, '00280030');
  const bitsAllocated = Number(first(meta, '00280100') ?? 16);
  const photometric = String(first(meta, '00280004') ?? 'MONOCHROME2').trim();
  const presentation = String(first(meta, '20500020') ?? '').trim().toUpperCase();
  const desc = [first(meta, '00080060'), first(meta, '00180015'), first(meta, '0008103E')]
    .filter((x) => x)
    .join(' · ');
  return {
    rows: Number(first(meta, '00280010')),
    columns: Number(first(meta, '00280011')),
    bitsAllocated,
    bitsStored: Number(first(meta, '00280101') ?? bitsAllocated),
    signed: Number(first(meta, '00280103') ?? 0) === 1,
    samplesPerPixel: Number(first(meta, '00280002') ?? 1),
    photometric,
    slope: Number(first(meta, '00281053') ?? 1) || 1,
    intercept: Number(first(meta, '00281052') ?? 0),
    windows,
    padding: meta['00280120']?.Value ? Number(first(meta, '00280120')) : undefined,
    pixelSpacing: spacing.length === 2 && spacing[0] > 0 && spacing[1] > 0 ? [spacing[0], spacing[1]] : undefined,
    frames: Number(first(meta, '00280008') ?? 1),
    presentationInverse: presentation === 'INVERSE',
    description: desc,
    modality: String(first(meta, '00080060') ?? '').trim(),
  };
}

export function isColor(info: ImageInfo) {
  return info.samplesPerPixel === 3;
}

/** Stored values from a decoded frame (Explicit VR Little Endian, at Bits Allocated). */
export function storedValues(info: ImageInfo, body: ArrayBuffer): LoadedImage {
  const n = info.rows * info.columns * info.samplesPerPixel;
  let pixels: Uint16Array | Int16Array | Uint8Array;
  if (info.bitsAllocated === 8) {
    pixels = new Uint8Array(body, 0, n);
  } else if (info.bitsAllocated === 16) {
    const aligned = body.byteLength % 2 === 0 ? body : body.slice(0, body.byteLength - 1);
    const raw = new Uint16Array(aligned, 0, n);
    const bits = info.bitsStored;
    if (info.signed) {
      const out = new Int16Array(n);
      const shift = 32 - bits;
      for (let i = 0; i < n; i++) out[i] = (raw[i] << shift) >> shift;
      pixels = out;
    } else if (bits < 16) {
      const mask = (1 << bits) - 1;
      for (let i = 0; i < n; i++) raw[i] &= mask;
      pixels = raw;
    } else {
      pixels = raw;
    }
  } else {
    throw new Error(`${info.bitsAllocated} bits allocated: the viewer shows 8- and 16-bit images`);
  }
  if (pixels.length < n) throw new Error(`the frame has ${pixels.length} samples, ${n} expected`);
  let min = Infinity;
  let max = -Infinity;
  if (!isColor(info)) {
    for (let i = 0; i < n; i++) {
      const v = pixels[i];
      if (v < min) min = v;
      if (v > max) max = v;
    }
  } else {
    min = 0;
    max = 255;
  }
  return { info, pixels, min, max, levels: [] };
}

/** PS3.3 C.11.2.1.2, output in [0, 1], as radlab-dicom's Window::apply. */
export function windowFn(w: Window): (x: number) => number {
  const c = w.center;
  const width = w.width;
  const fn = w.fn ?? 'LINEAR';
  if (fn === 'LINEAR' && width >= 1) {
    const lo = c - 0.5 - (width - 1) / 2;
    const hi = c - 0.5 + (width - 1) / 2;
    return (x) => (x <= lo ? 0 : x > hi || width === 1 ? 1 : (x - (c - 0.5)) / (width - 1) + 0.5);
  }
  if (fn === 'SIGMOID') {
    const ww = Math.max(width, Number.MIN_VALUE);
    return (x) => 1 / (1 + Math.exp((-4 * (x - c)) / ww));
  }
  const ww = Math.max(width, Number.MIN_VALUE);
  return (x) => (x <= c - ww / 2 ? 0 : x > c + ww / 2 ? 1 : (x - c) / ww + 0.5);
}

/** Whether grey values are shown inverted (MONOCHROME1, or a Presentation LUT INVERSE). */
export function invertedByFile(info: ImageInfo) {
  return (info.photometric === 'MONOCHROME1') !== info.presentationInverse;
}

/**
 * The table from stored value (offset by `min`) to a packed RGBA pixel (little endian:
 * 0xAABBGGRR), for one window and polarity.
 */
export function greyTable(img: LoadedImage, w: Window, invert: boolean): Uint32Array {
  const { min, max, info } = img;
  const f = windowFn(w);
  const table = new Uint32Array(max - min + 1);
  for (let s = min; s <= max; s++) {
    let y = f(s * info.slope + info.intercept);
    y = y < 0 ? 0 : y > 1 ? 1 : y;
    const p = Math.floor((invert ? 1 - y : y) * 255);
    table[s - min] = 0xff000000 | (p << 16) | (p << 8) | p;
  }
  return table;
}

/** The central 99% of the modality values (padding excluded), as the server's auto window. */
export function autoWindow(img: LoadedImage, tail = 0.005): Window {
  const { min, max, pixels, info } = img;
  const counts = new Uint32Array(max - min + 1);
  for (let i = 0; i < pixels.length; i++) counts[pixels[i] - min]++;
  if (info.padding !== undefined && info.padding >= min && info.padding <= max) counts[info.padding - min] = 0;
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  const cut = Math.floor(total * tail);
  let lo = min;
  let hi = max;
  let acc = 0;
  for (let i = 0; i < counts.length; i++) {
    acc += counts[i];
    if (acc > cut) {
      lo = min + i;
      break;
    }
  }
  acc = 0;
  for (let i = counts.length - 1; i >= 0; i--) {
    acc += counts[i];
    if (acc > cut) {
      hi = min + i;
      break;
    }
  }
  const a = lo * info.slope + info.intercept;
  const b = hi * info.slope + info.intercept;
  const l = Math.min(a, b);
  const h = Math.max(a, b);
  return { center: (l + h) / 2 + 0.5, width: Math.max(h - l + 1, 1), fn: 'LINEAR', name: 'Auto' };
}

/** The modality value of the pixel at (x, y), or undefined outside the image. */
export function valueAt(img: LoadedImage, x: number, y: number): number[] | undefined {
  const { info } = img;
  const ix = Math.floor(x);
  const iy = Math.floor(y);
  if (ix < 0 || iy < 0 || ix >= info.columns || iy >= info.rows) return undefined;
  const i = iy * info.columns + ix;
  if (isColor(info)) return [img.pixels[i * 3], img.pixels[i * 3 + 1], img.pixels[i * 3 + 2]];
  return [img.pixels[i] * info.slope + info.intercept];
}

/** Halved copies (2x2 means of stored values) down to `smallest` pixels on the long side. */
export function buildLevels(img: LoadedImage, smallest = 256) {
  if (isColor(img.info) || img.levels.length) return;
  let w = img.info.columns;
  let h = img.info.rows;
  let src: ArrayLike<number> = img.pixels;
  let scale = 1;
  while (Math.max(w, h) / 2 >= smallest) {
    const nw = w >> 1;
    const nh = h >> 1;
    const out = new Float32Array(nw * nh);
    for (let y = 0; y < nh; y++) {
      const r0 = 2 * y * w;
      const r1 = r0 + w;
      for (let x = 0; x < nw; x++) {
        const c = 2 * x;
        out[y * nw + x] = (src[r0 + c] + src[r0 + c + 1] + src[r1 + c] + src[r1 + c + 1]) * 0.25;
      }
    }
    scale /= 2;
    img.levels.push({ scale, width: nw, height: nh, pixels: out });
    src = out;
    w = nw;
    h = nh;
  }
}
