#!/usr/bin/env bash
# Copy the shared corpus's DICOM files into fuzz/corpus/parse_deid (git-ignored) as the seed
# corpus. The corpus is never committed: it carries third-party data under its own terms.
# Usage: fuzz/seed.sh [DATA_DIR]   (default: ../shared/data next to the repository, or
# $RADLAB_CORPUS)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${1:-${RADLAB_CORPUS:-$here/../../shared/data}}"
[ -d "$data/dicom" ] || { echo "no DICOM corpus at $data/dicom" >&2; exit 1; }
out="$here/corpus/parse_deid"
mkdir -p "$out"
n=0
while IFS= read -r -d '' f; do
  # Flatten the path into the name so that files of the same name in two folders both stay.
  rel="${f#"$data"/dicom/}"
  cp "$f" "$out/${rel//\//__}"
  n=$((n + 1))
done < <(find "$data/dicom" -type f -print0 | sort -z)
echo "seeded $n files into $out"
