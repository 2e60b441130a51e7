// Minimal Cornerstone3D 5.14 viewer: the reference page of the viewer benchmark
// (bench/viewer/measure.mjs). One DICOM file, wadouri: loader, one STACK viewport,
// WindowLevel on left drag.
//
// Query string:
//   url=/file.dcm      DICOM Part 10 file to show (required; relative to this page or absolute)
//   render=cpu|gpu     rendering path, forced (default cpu; see README in measure.mjs)
//   size=window        viewport fills the window instead of 1024x1024 CSS px
//
// Exposes window.__bench = {
//   firstImageMs,  performance.now() (ms since navigation start) of the first render that has
//                  the stack's image loaded AND non-black pixels on the viewport canvas
//   renders,       IMAGE_RENDERED events counted after that first image (W/L redraws)
//   loadedMs,      when setStack() resolved (image fetched + decoded)
//   renderPath,    'cpu' | 'gpu' as Cornerstone reports it after init
//   error,         message if anything failed
// }
// and window.__cs = {viewport, metaData, renderingEngine} for poking at it from devtools.
import 'events'; // pitfall 1: vtk.js subclasses Node's EventEmitter; keep the polyfill in the bundle
import {
  RenderingEngine,
  Enums,
  init as coreInit,
  metaData,
  getShouldUseCPURendering,
} from '@cornerstonejs/core';
import dicomImageLoader from '@cornerstonejs/dicom-image-loader';
import {
  init as toolsInit,
  addTool,
  ToolGroupManager,
  WindowLevelTool,
  Enums as ToolEnums,
} from '@cornerstonejs/tools';

const bench = (window.__bench = {
  firstImageMs: null,
  renders: 0,
  loadedMs: null,
  renderPath: null,
  error: null,
});

function fail(e) {
  bench.error = String((e && e.stack) || e);
  console.error('bench viewer error:', e);
}
window.addEventListener('error', (ev) => fail(ev.error || ev.message));
window.addEventListener('unhandledrejection', (ev) => fail(ev.reason));

const params = new URLSearchParams(location.search);
const fileUrl = params.get('url');
const renderPath = (params.get('render') || 'cpu').toLowerCase();
const element = document.getElementById('viewport');
if (params.get('size') === 'window') element.classList.add('window');

// Pitfall 2: files with Pixel Spacing 0\0 (the RG1 CR has it) or without one give a black GPU
// viewport / NaN tool coordinates. This provider runs first (high priority), asks the rest of
// the chain (re-entry guarded), and answers imagePlaneModule with 1 mm spacing when the file's
// is zero or missing. (In 5.14 the plane module comes from @cornerstonejs/metadata's typed
// providers, not from dicomImageLoader.wadouri.metaData.metaDataProvider, which answers
// undefined here; so wrapping the whole chain is the robust way.)
let inSpacingProvider = false;
function positiveSpacingProvider(type, imageId, options) {
  if (inSpacingProvider || type !== Enums.MetadataModules.IMAGE_PLANE) return undefined;
  let plane;
  inSpacingProvider = true;
  try {
    plane = metaData.getMetaData(type, imageId, options);
  } finally {
    inSpacingProvider = false;
  }
  if (!plane) return undefined;
  const ok = (v) => Number.isFinite(v) && v > 0;
  if (ok(plane.rowPixelSpacing) && ok(plane.columnPixelSpacing)) return plane;
  const fixed = {
    ...plane,
    pixelSpacing: [1, 1],
    rowPixelSpacing: 1,
    columnPixelSpacing: 1,
    usingDefaultValues: true,
  };
  if (plane.calibration) {
    fixed.calibration = { ...plane.calibration, rowPixelSpacing: 1, columnPixelSpacing: 1 };
  }
  return fixed;
}

// Does the viewport canvas show something other than black? Samples a sparse grid.
function canvasHasImage() {
  const canvas = element.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const ctx = canvas.getContext('2d');
  if (!ctx) return false;
  const { width, height } = canvas;
  const data = ctx.getImageData(0, 0, width, height).data;
  const step = 4 * 97; // odd stride so the grid is not column-aligned
  let lit = 0;
  for (let i = 0; i < data.length; i += step) {
    if (data[i] > 8 || data[i + 1] > 8 || data[i + 2] > 8) {
      if (++lit > 50) return true;
    }
  }
  return false;
}

async function main() {
  if (!fileUrl) throw new Error('missing ?url=');
  coreInit({ rendering: { useCPURendering: renderPath === 'cpu' } });
  // Force the path in both directions (init() alone may fall back to CPU without WebGL).
  bench.renderPath = getShouldUseCPURendering() ? 'cpu' : 'gpu';
  dicomImageLoader.init({ maxWebWorkers: 1 });
  toolsInit();
  metaData.addProvider(positiveSpacingProvider, 10000);

  const renderingEngine = new RenderingEngine('bench-engine');
  const viewportId = 'bench-stack';
  renderingEngine.enableElement({
    viewportId,
    type: Enums.ViewportType.STACK,
    element,
    defaultOptions: { background: [0, 0, 0] },
  });
  const viewport = renderingEngine.getViewport(viewportId);
  window.__cs = { viewport, metaData, renderingEngine }; // for debugging from devtools/playwright

  addTool(WindowLevelTool);
  const toolGroup = ToolGroupManager.createToolGroup('bench-tools');
  toolGroup.addTool(WindowLevelTool.toolName);
  toolGroup.setToolActive(WindowLevelTool.toolName, {
    bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }],
  });
  toolGroup.addViewport(viewportId, renderingEngine.id);

  // Pitfall 4: IMAGE_RENDERED already fires on the empty viewport when the tool group
  // attaches; only a render after the stack's image is loaded, with lit pixels, counts.
  let imageLoaded = false;
  element.addEventListener(Enums.Events.IMAGE_RENDERED, () => {
    if (bench.firstImageMs !== null) {
      bench.renders++;
      return;
    }
    if (!imageLoaded || !viewport.getImageData()) return;
    const t = performance.now();
    if (canvasHasImage()) bench.firstImageMs = t;
  });

  const imageId = 'wadouri:' + new URL(fileUrl, location.href).href;
  await viewport.setStack([imageId], 0);
  imageLoaded = true;
  bench.loadedMs = performance.now();
  viewport.render();
}

main().catch(fail);
