// Tiny static file server (node:http only) for the viewer benchmark.
//
//   import { startStaticServer } from './serve_static.mjs';
//   const srv = await startStaticServer({ root: 'cornerstone/dist', files: { '/file.dcm': '/path/x.dcm' } });
//   srv.url   // 'http://127.0.0.1:PORT'
//   await srv.close();
//
// CLI: node bench/viewer/serve_static.mjs DIR [--file PATH] [--port N]
//      (--file is served at /file.dcm)
//
// Caching, so that a warm reload behaves like a browser with a normal HTTP cache:
// content-hashed files under /assets/ are `max-age=31536000, immutable`; everything else
// (index.html, the DICOM file) is `no-cache` with an ETag, so a reload revalidates (304).
// No compression: it all travels over loopback.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.dcm': 'application/dicom',
};

function contentType(p) {
  return CONTENT_TYPES[path.extname(p).toLowerCase()] || 'application/octet-stream';
}

export async function startStaticServer({ root, files = {}, port = 0, host = '127.0.0.1', log = false } = {}) {
  const rootAbs = path.resolve(root);
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    let pathname = decodeURIComponent(u.pathname);
    let file;
    if (Object.hasOwn(files, pathname)) {
      file = path.resolve(files[pathname]);
    } else {
      if (pathname.endsWith('/')) pathname += 'index.html';
      file = path.resolve(rootAbs, '.' + pathname);
      if (file !== rootAbs && !file.startsWith(rootAbs + path.sep)) {
        res.writeHead(403).end();
        return;
      }
    }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) {
        if (log) console.error(`404 ${req.url}`);
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
      const headers = {
        'content-type': contentType(file),
        'cache-control': pathname.startsWith('/assets/')
          ? 'public, max-age=31536000, immutable'
          : 'no-cache',
        etag,
        'last-modified': st.mtime.toUTCString(),
      };
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, headers).end();
        return;
      }
      headers['content-length'] = st.size;
      res.writeHead(200, headers);
      if (req.method === 'HEAD') return res.end();
      fs.createReadStream(file).pipe(res);
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  return {
    url: `http://${host}:${addr.port}`,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const root = args.find((a, i) => !a.startsWith('--') && !(args[i - 1] || '').startsWith('--'));
  const opt = (n) => {
    const i = args.indexOf(n);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (!root) {
    console.error('usage: node serve_static.mjs DIR [--file PATH] [--port N]');
    process.exit(2);
  }
  const files = opt('--file') ? { '/file.dcm': opt('--file') } : {};
  const srv = await startStaticServer({ root, files, port: Number(opt('--port') || 8000), log: true });
  console.log(`serving ${path.resolve(root)} at ${srv.url}` + (files['/file.dcm'] ? ` (+ /file.dcm)` : ''));
}
