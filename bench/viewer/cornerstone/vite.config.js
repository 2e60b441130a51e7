import { defineConfig, createLogger } from 'vite';

// Production build only (pitfall 3 of shared/guide/VIEWER.md: the dev server would need
// optimizeDeps.include for the codecs; the built bundle needs nothing).

// The codecs' emscripten glue and dcmjs import node's fs/path/url behind runtime checks;
// vite's "externalized for browser compatibility" warnings about them are expected noise.
const logger = createLogger();
const warn = logger.warn.bind(logger);
logger.warn = (msg, opts) => {
  if (msg.includes('externalized for browser compatibility')) return;
  warn(msg, opts);
};

export default defineConfig({
  base: './',
  customLogger: logger,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 8000,
    rolldownOptions: { checks: { pluginTimings: false } },
  },
  worker: { format: 'es' },
});
