#!/usr/bin/env bash
# Install the viewer benchmark's node deps and build the Cornerstone reference page.
# Idempotent: npm ci only when package-lock.json changed since the last install, vite build
# only when a source is newer than dist/index.html. Usage: bench/viewer/setup.sh [--force]
set -euo pipefail
cd "$(dirname "$0")"
force=${1:-}

install() { # dir
  local d=$1
  if [[ $force == --force || ! -f $d/node_modules/.package-lock.json \
        || $d/package-lock.json -nt $d/node_modules/.package-lock.json \
        || $d/package.json -nt $d/node_modules/.package-lock.json ]]; then
    echo "setup: npm install in bench/viewer/$d" >&2
    if [[ -f $d/package-lock.json ]]; then
      (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
    else
      (cd "$d" && npm install --no-audit --no-fund --loglevel=error)
    fi
  fi
}

install .            # playwright-core for measure.mjs
install cornerstone  # the Cornerstone3D page

cs=cornerstone
if [[ $force == --force || ! -f $cs/dist/index.html ]] \
   || [[ -n $(find $cs/src $cs/index.html $cs/vite.config.js $cs/package-lock.json -newer $cs/dist/index.html -print -quit) ]]; then
  echo "setup: vite build in bench/viewer/$cs" >&2
  (cd "$cs" && npx vite build --logLevel warn)
fi
[[ -x /usr/bin/chromium ]] || echo "setup: note: /usr/bin/chromium missing (apt-get install -y chromium)" >&2
echo "setup: ok (bench/viewer/$cs/dist)" >&2
