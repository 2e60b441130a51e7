// The image viewport: a canvas the image is drawn into through the display pipeline
// (image.ts), at the screen's resolution, and an SVG overlay with the boxes. Zoom, pan,
// fit, 1:1, rotate by quarter turns, flip, invert, window/level by drag or by value, and
// the pixel under the cursor. Boxes are drawn, selected, moved and resized here; what they
// mean (labels, layers, undo) is the page's business, told through callbacks.
//
// Each redraw computes only the pixels on screen: every screen pixel is mapped back to the
// image (an affine map: quarter turns and flips keep it to two increments per row) and
// looked up in a table from stored value to grey, built once per window. When the image
// is shown at half size or less, a halved copy (2x2 means) is sampled instead, so a 2,000
// pixel radiograph fitted into 900 pixels neither aliases nor costs more than the screen.

import {
  type LoadedImage,
  type Window,
  autoWindow,
  buildLevels,
  greyTable,
  invertedByFile,
  isColor,
  valueAt,
} from './image';

export type BBox = [number, number, number, number];

export interface Shape {
  id: string;
  bbox: BBox;
  color: string;
  text?: string;
  editable?: boolean;
  dashed?: boolean;
  selected?: boolean;
  /** Write the text under the box (another layer's text is over it). */
  textBelow?: boolean;
}

export interface ViewState {
  window: Window;
  invert: boolean;
  scale: number;
  rotation: number;
  flipH: boolean;
  flipV: boolean;
}

export type Tool = 'box' | 'wl' | 'pan' | 'zoom';

export interface ViewerEvents {
  onCreate?(bbox: BBox): void;
  onModify?(id: string, bbox: BBox): void;
  onSelect?(id: string | null): void;
  onCursor?(p: { x: number; y: number; value?: number[] } | null): void;
  onView?(v: ViewState): void;
}

const SVG = 'http://www.w3.org/2000/svg';
const HANDLE = 5;

export class Viewer {
  readonly el: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  private svg: SVGSVGElement;
  private ctx: CanvasRenderingContext2D;
  private img?: LoadedImage;
  private table?: Uint32Array;
  private tableKey = '';
  private shapes: Shape[] = [];
  private frame?: ImageData;
  private raf = 0;
  /** Redraws of the image since load (a benchmark reads it). */
  frames = 0;
  tool: Tool = 'box';
  window: Window = { center: 0, width: 1 };
  invert = false;
  scale = 1;
  panX = 0;
  panY = 0;
  rotation = 0;
  flipH = false;
  flipV = false;
  private drag?: {
    kind: 'wl' | 'pan' | 'zoom' | 'draw' | 'move' | 'resize';
    x0: number;
    y0: number;
    start: { window: Window; panX: number; panY: number; scale: number };
    id?: string;
    corner?: number;
    bbox0?: BBox;
    anchor?: [number, number];
    current?: BBox;
  };
  private resizeObserver: ResizeObserver;

  constructor(
    parent: HTMLElement,
    private events: ViewerEvents = {},
  ) {
    this.el = document.createElement('div');
    this.el.className = 'viewport';
    this.el.tabIndex = -1;
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('aria-label', 'image');
    this.svg = document.createElementNS(SVG, 'svg');
    this.svg.classList.add('overlay');
    this.el.append(this.canvas, this.svg);
    parent.append(this.el);
    this.ctx = this.canvas.getContext('2d', { alpha: false, willReadFrequently: false })!;
    this.el.addEventListener('pointerdown', this.down);
    this.el.addEventListener('pointermove', this.move);
    this.el.addEventListener('pointerup', this.up);
    this.el.addEventListener('pointercancel', this.up);
    this.el.addEventListener('pointerleave', () => this.events.onCursor?.(null));
    this.el.addEventListener('wheel', this.wheel, { passive: false });
    this.el.addEventListener('contextmenu', (e) => e.preventDefault());
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.el);
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.raf);
    this.el.remove();
  }

  get image() {
    return this.img;
  }

  /** Show an image: fitted, at the given window or the file's first, else a histogram window. */
  setImage(img: LoadedImage, window?: Window) {
    this.img = img;
    buildLevels(img);
    this.window = window ?? img.info.windows[0] ?? autoWindow(img);
    this.invert = false;
    this.rotation = 0;
    this.flipH = this.flipV = false;
    this.tableKey = '';
    this.resize();
    this.fit();
  }

  setEvents(events: ViewerEvents) {
    this.events = events;
  }

  setShapes(shapes: Shape[]) {
    this.shapes = shapes;
    this.drawOverlay();
  }

  setWindow(w: Window) {
    this.window = { ...w, width: Math.max(1, w.width) };
    this.request();
  }

  toggleInvert() {
    this.invert = !this.invert;
    this.request();
  }

  fit() {
    if (!this.img) return;
    const { columns, rows } = this.img.info;
    const [w, h] = this.rotation % 180 === 0 ? [columns, rows] : [rows, columns];
    this.scale = Math.min(this.canvas.width / w, this.canvas.height / h) || 1;
    this.panX = this.panY = 0;
    this.request();
  }

  oneToOne() {
    this.scale = 1;
    this.request();
  }

  zoomBy(factor: number, at?: [number, number]) {
    const s = Math.min(40, Math.max(0.02, this.scale * factor));
    if (at) {
      // Keep the image point under `at` where it is.
      const [ix, iy] = this.toImage(at[0], at[1]);
      this.scale = s;
      const [sx, sy] = this.toScreen(ix, iy);
      this.panX += (at[0] - sx) * this.dpr();
      this.panY += (at[1] - sy) * this.dpr();
    } else {
      this.scale = s;
    }
    this.request();
  }

  rotate(quarterTurns: number) {
    this.rotation = (((this.rotation + 90 * quarterTurns) % 360) + 360) % 360;
    this.fit();
  }

  flip(horizontal: boolean) {
    if (horizontal) this.flipH = !this.flipH;
    else this.flipV = !this.flipV;
    this.request();
  }

  reset() {
    if (!this.img) return;
    this.window = this.img.info.windows[0] ?? autoWindow(this.img);
    this.invert = false;
    this.rotation = 0;
    this.flipH = this.flipV = false;
    this.fit();
  }

  viewState(): ViewState {
    return {
      window: this.window,
      invert: this.invert,
      scale: this.scale,
      rotation: this.rotation,
      flipH: this.flipH,
      flipV: this.flipV,
    };
  }

  /** The image's transform: image (x, y) to canvas pixels. */
  private matrix(): [number, number, number, number, number, number] {
    const img = this.img!;
    const cx = img.info.columns / 2;
    const cy = img.info.rows / 2;
    const rad = (this.rotation * Math.PI) / 180;
    const cos = Math.round(Math.cos(rad));
    const sin = Math.round(Math.sin(rad));
    const fx = this.flipH ? -1 : 1;
    const fy = this.flipV ? -1 : 1;
    // screen = T(center + pan) * S(scale) * R * F * (p - c)
    const a = this.scale * cos * fx;
    const b = this.scale * -sin * fy;
    const c = this.scale * sin * fx;
    const d = this.scale * cos * fy;
    const tx = this.canvas.width / 2 + this.panX - (a * cx + b * cy);
    const ty = this.canvas.height / 2 + this.panY - (c * cx + d * cy);
    return [a, b, c, d, tx, ty];
  }

  toScreen(x: number, y: number): [number, number] {
    const [a, b, c, d, tx, ty] = this.matrix();
    const r = this.dpr();
    return [(a * x + b * y + tx) / r, (c * x + d * y + ty) / r];
  }

  toImage(sx: number, sy: number): [number, number] {
    const [a, b, c, d, tx, ty] = this.matrix();
    const r = this.dpr();
    const px = sx * r - tx;
    const py = sy * r - ty;
    const det = a * d - b * c;
    return [(d * px - b * py) / det, (-c * px + a * py) / det];
  }

  private dpr() {
    return window.devicePixelRatio || 1;
  }

  private resize() {
    const r = this.dpr();
    const w = Math.max(1, Math.round(this.el.clientWidth * r));
    const h = Math.max(1, Math.round(this.el.clientHeight * r));
    if (w === this.canvas.width && h === this.canvas.height) return;
    const fitted = this.img && Math.abs(this.panX) < 1e-9 && Math.abs(this.panY) < 1e-9;
    this.canvas.width = w;
    this.canvas.height = h;
    this.frame = undefined;
    if (fitted) this.fit();
    else this.request();
  }

  private request() {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      this.render();
    });
  }

  /** Draw now, dropping a pending frame request. */
  private renderNow() {
    if (this.raf) {
      cancelAnimationFrame(this.raf);
      this.raf = 0;
    }
    this.render();
  }

  /** Draw now (tests and benchmarks call it to skip the frame wait). */
  render() {
    const img = this.img;
    const W = this.canvas.width;
    const H = this.canvas.height;
    if (!img) {
      this.ctx.fillStyle = '#000';
      this.ctx.fillRect(0, 0, W, H);
      return;
    }
    if (!this.frame || this.frame.width !== W || this.frame.height !== H) {
      this.frame = this.ctx.createImageData(W, H);
    }
    const out = new Uint32Array(this.frame.data.buffer);
    const [a, b, c, d, tx, ty] = this.matrix();
    const det = a * d - b * c;
    // Inverse map: screen pixel centre (px + 0.5, py + 0.5) to image coordinates.
    const ia = d / det;
    const ib = -b / det;
    const ic = -c / det;
    const id = a / det;
    const color = isColor(img.info);
    let src: ArrayLike<number> = img.pixels;
    let sw = img.info.columns;
    let sh = img.info.rows;
    let k = 1;
    if (!color) {
      // The smallest halved copy still at least as large as the screen's sampling.
      for (const l of img.levels) {
        if (l.scale >= this.scale) {
          src = l.pixels;
          sw = l.width;
          sh = l.height;
          k = l.scale;
        }
      }
    }
    const invert = this.invert !== invertedByFile(img.info);
    let table = this.table;
    const key = `${this.window.center}|${this.window.width}|${this.window.fn}|${invert}`;
    if (!color && (!table || key !== this.tableKey)) {
      table = this.table = greyTable(img, this.window, invert);
      this.tableKey = key;
    }
    const min = img.min;
    const background = 0xff000000;
    for (let py = 0; py < H; py++) {
      const qx = 0.5 - tx;
      const qy = py + 0.5 - ty;
      let ix = (ia * qx + ib * qy) * k;
      let iy = (ic * qx + id * qy) * k;
      const dx = ia * k;
      const dy = ic * k;
      let o = py * W;
      if (color) {
        for (let px = 0; px < W; px++, ix += dx, iy += dy, o++) {
          if (ix < 0 || iy < 0 || ix >= sw || iy >= sh) {
            out[o] = background;
            continue;
          }
          const i = ((iy | 0) * sw + (ix | 0)) * 3;
          const inv = this.invert;
          const r = inv ? 255 - src[i] : src[i];
          const g = inv ? 255 - src[i + 1] : src[i + 1];
          const bl = inv ? 255 - src[i + 2] : src[i + 2];
          out[o] = 0xff000000 | (bl << 16) | (g << 8) | r;
        }
      } else if (k === 1) {
        for (let px = 0; px < W; px++, ix += dx, iy += dy, o++) {
          if (ix < 0 || iy < 0 || ix >= sw || iy >= sh) {
            out[o] = background;
            continue;
          }
          out[o] = table![src[(iy | 0) * sw + (ix | 0)] - min];
        }
      } else {
        for (let px = 0; px < W; px++, ix += dx, iy += dy, o++) {
          if (ix < 0 || iy < 0 || ix >= sw || iy >= sh) {
            out[o] = background;
            continue;
          }
          out[o] = table![((src[(iy | 0) * sw + (ix | 0)] + 0.5) | 0) - min];
        }
      }
    }
    this.ctx.putImageData(this.frame, 0, 0);
    this.frames++;
    this.drawOverlay();
    this.events.onView?.(this.viewState());
  }

  private screenRect(b: BBox): [number, number, number, number] {
    const [x0, y0] = this.toScreen(b[0], b[1]);
    const [x1, y1] = this.toScreen(b[2], b[3]);
    return [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
  }

  private drawOverlay() {
    const svg = this.svg;
    while (svg.firstChild) svg.firstChild.remove();
    if (!this.img) return;
    const shapes = this.shapes.map((s) =>
      this.drag?.current && this.drag.id === s.id ? { ...s, bbox: this.drag.current } : s,
    );
    if (this.drag?.kind === 'draw' && this.drag.current) {
      shapes.push({ id: '__new', bbox: this.drag.current, color: '#ffd400', selected: true });
    }
    for (const s of shapes) {
      const [x0, y0, x1, y1] = this.screenRect(s.bbox);
      const g = document.createElementNS(SVG, 'g');
      g.dataset.id = s.id;
      const r = document.createElementNS(SVG, 'rect');
      r.setAttribute('x', String(x0));
      r.setAttribute('y', String(y0));
      r.setAttribute('width', String(Math.max(0, x1 - x0)));
      r.setAttribute('height', String(Math.max(0, y1 - y0)));
      r.setAttribute('stroke', s.color);
      r.setAttribute('stroke-width', s.selected ? '2.5' : '1.5');
      r.setAttribute('fill', s.selected ? 'rgba(255,255,255,0.06)' : 'none');
      if (s.dashed) r.setAttribute('stroke-dasharray', '6 4');
      g.append(r);
      if (s.text) {
        const t = document.createElementNS(SVG, 'text');
        t.setAttribute('x', String(x0 + 2));
        const below = s.textBelow ? y1 + 13 <= this.el.clientHeight : y0 <= 14;
        t.setAttribute('y', String(below ? y1 + 13 : y0 - 4));
        t.setAttribute('fill', s.color);
        t.textContent = s.text;
        g.append(t);
      }
      if (s.selected && s.editable) {
        for (const [hx, hy] of corners([x0, y0, x1, y1])) {
          const h = document.createElementNS(SVG, 'rect');
          h.setAttribute('x', String(hx - HANDLE));
          h.setAttribute('y', String(hy - HANDLE));
          h.setAttribute('width', String(2 * HANDLE));
          h.setAttribute('height', String(2 * HANDLE));
          h.setAttribute('fill', s.color);
          h.classList.add('handle');
          g.append(h);
        }
      }
      svg.append(g);
    }
  }

  private local(e: PointerEvent | WheelEvent): [number, number] {
    const r = this.el.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  /** The editable shape under a screen point: a corner handle of the selected one, else a box. */
  private hit(sx: number, sy: number): { id: string; corner?: number } | undefined {
    const sel = this.shapes.find((s) => s.selected && s.editable);
    if (sel) {
      const cs = corners(this.screenRect(sel.bbox));
      const i = cs.findIndex(([hx, hy]) => Math.abs(hx - sx) <= HANDLE + 2 && Math.abs(hy - sy) <= HANDLE + 2);
      if (i >= 0) return { id: sel.id, corner: i };
    }
    // The smallest box containing the point, so a box inside another can be picked.
    let best: { id: string; area: number } | undefined;
    for (const s of this.shapes) {
      if (!s.editable) continue;
      const [x0, y0, x1, y1] = this.screenRect(s.bbox);
      const near = 4;
      const inside = sx >= x0 - near && sx <= x1 + near && sy >= y0 - near && sy <= y1 + near;
      if (!inside) continue;
      const onEdge = Math.min(Math.abs(sx - x0), Math.abs(sx - x1), Math.abs(sy - y0), Math.abs(sy - y1)) <= near;
      if (this.tool !== 'box' && !onEdge) continue;
      const area = (x1 - x0) * (y1 - y0);
      if (!best || area < best.area) best = { id: s.id, area };
    }
    return best && { id: best.id };
  }

  private down = (e: PointerEvent) => {
    if (!this.img) return;
    this.el.focus({ preventScroll: true });
    const [sx, sy] = this.local(e);
    const start = { window: { ...this.window }, panX: this.panX, panY: this.panY, scale: this.scale };
    const base = { x0: sx, y0: sy, start };
    if (e.button === 1 || (e.button === 0 && this.tool === 'pan')) {
      this.drag = { kind: 'pan', ...base };
    } else if (e.button === 2 || (e.button === 0 && this.tool === 'wl')) {
      const hit = e.button === 0 ? this.hit(sx, sy) : undefined;
      if (hit) return this.startEdit(e, hit, base);
      this.drag = { kind: 'wl', ...base };
    } else if (e.button === 0 && this.tool === 'zoom') {
      this.drag = { kind: 'zoom', ...base };
    } else if (e.button === 0) {
      const hit = this.hit(sx, sy);
      if (hit) return this.startEdit(e, hit, base);
      this.events.onSelect?.(null);
      const [ix, iy] = this.clampToImage(this.toImage(sx, sy));
      this.drag = { kind: 'draw', ...base, anchor: [ix, iy] };
    } else {
      return;
    }
    this.el.setPointerCapture(e.pointerId);
    e.preventDefault();
  };

  private startEdit(e: PointerEvent, hit: { id: string; corner?: number }, base: any) {
    const shape = this.shapes.find((s) => s.id === hit.id)!;
    this.events.onSelect?.(hit.id);
    if (hit.corner !== undefined) {
      // Resizing: the opposite corner, in image coordinates, stays.
      const cs = corners(this.screenRect(shape.bbox));
      const [ox, oy] = cs[(hit.corner + 2) % 4];
      this.drag = { kind: 'resize', ...base, id: hit.id, bbox0: shape.bbox, anchor: this.toImage(ox, oy) };
    } else {
      this.drag = { kind: 'move', ...base, id: hit.id, bbox0: shape.bbox };
    }
    this.el.setPointerCapture(e.pointerId);
    e.preventDefault();
  }

  private clampToImage([x, y]: [number, number]): [number, number] {
    const { columns, rows } = this.img!.info;
    return [Math.min(columns, Math.max(0, x)), Math.min(rows, Math.max(0, y))];
  }

  private move = (e: PointerEvent) => {
    if (!this.img) return;
    const [sx, sy] = this.local(e);
    const [ix, iy] = this.toImage(sx, sy);
    this.events.onCursor?.({ x: ix, y: iy, value: valueAt(this.img, ix, iy) });
    const d = this.drag;
    if (!d) return;
    const dx = sx - d.x0;
    const dy = sy - d.y0;
    switch (d.kind) {
      case 'pan':
        this.panX = d.start.panX + dx * this.dpr();
        this.panY = d.start.panY + dy * this.dpr();
        this.renderNow();
        break;
      case 'zoom': {
        this.scale = d.start.scale;
        this.zoomBy(Math.exp(-dy / 150), [d.x0, d.y0]);
        break;
      }
      case 'wl': {
        // Sensitivity follows the image's range of values: the whole range over 1,000 px.
        const range = Math.max(1, (this.img.max - this.img.min) * Math.abs(this.img.info.slope));
        const k = range / 1000;
        this.window = {
          ...d.start.window,
          center: d.start.window.center + dy * k,
          width: Math.max(1, d.start.window.width + dx * k),
          name: undefined,
        };
        // Drawn at once: the browser hands mouse moves over once per frame, so drawing in
        // the handler shows each move in the frame it arrived in (a redraw costs the
        // screen's pixels, a few milliseconds).
        this.renderNow();
        break;
      }
      case 'draw': {
        const [bx, by] = this.clampToImage([ix, iy]);
        const [ax, ay] = d.anchor!;
        d.current = [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
        this.drawOverlay();
        break;
      }
      case 'move': {
        const [x0, y0] = this.toImage(d.x0, d.y0);
        const b = d.bbox0!;
        const { columns, rows } = this.img.info;
        const mx = Math.min(columns - b[2], Math.max(-b[0], ix - x0));
        const my = Math.min(rows - b[3], Math.max(-b[1], iy - y0));
        d.current = [b[0] + mx, b[1] + my, b[2] + mx, b[3] + my];
        this.drawOverlay();
        break;
      }
      case 'resize': {
        const [bx, by] = this.clampToImage([ix, iy]);
        const [ax, ay] = d.anchor!;
        d.current = [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
        this.drawOverlay();
        break;
      }
    }
  };

  private up = (e: PointerEvent) => {
    const d = this.drag;
    this.drag = undefined;
    if (this.el.hasPointerCapture(e.pointerId)) this.el.releasePointerCapture(e.pointerId);
    if (!d || !d.current) {
      this.drawOverlay();
      return;
    }
    const b = roundBox(d.current);
    if (d.kind === 'draw') {
      // A click, or a box under 3 screen pixels, draws nothing.
      const [x0, y0, x1, y1] = this.screenRect(b);
      if (x1 - x0 >= 3 && y1 - y0 >= 3) this.events.onCreate?.(b);
    } else if ((d.kind === 'move' || d.kind === 'resize') && d.id) {
      this.events.onModify?.(d.id, b);
    }
    this.drawOverlay();
  };

  private wheel = (e: WheelEvent) => {
    if (!this.img) return;
    e.preventDefault();
    const [sx, sy] = this.local(e);
    this.zoomBy(Math.exp(-e.deltaY / 500), [sx, sy]);
  };
}

function corners([x0, y0, x1, y1]: [number, number, number, number]): [number, number][] {
  return [
    [x0, y0],
    [x1, y0],
    [x1, y1],
    [x0, y1],
  ];
}

/** Boxes are kept to a tenth of a pixel. */
function roundBox(b: BBox): BBox {
  return b.map((v) => Math.round(v * 10) / 10) as BBox;
}
