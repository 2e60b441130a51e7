import { defineConfig } from 'vite';

// The web UI, built into dist/ and embedded in the radlab binary (radlab-server's build.rs).
// JSX is Preact's (tsconfig's jsxImportSource); `npm run dev` proxies the API to a running
// `radlab serve` on 127.0.0.1:8080.
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    sourcemap: true,
    target: 'es2022',
    reportCompressedSize: true,
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8080' },
  },
});
