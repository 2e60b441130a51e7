#!/usr/bin/env bash
# Peak memory of rendering the largest image of the corpus (3062x2394 12-bit mammogram,
# JPEG lossless) against its decoded size (16 bits a sample). Writes a Markdown section.
# usage: bench/memory.sh RADLAB_BINARY CORPUS_DIR OUT.md [RUNS]
set -euo pipefail
radlab=$1; corpus=$2; out=$3; runs=${4:-5}
file="$corpus/dicom/other/fodicom_GH133_mg_breast_mlo.dcm"
tmp=$(mktemp -d)
peaks=()
for _ in $(seq "$runs"); do
  /usr/bin/time -f %M -o "$tmp/rss" "$radlab" render "$file" -o "$tmp/out.png" >/dev/null
  peaks+=("$(cat "$tmp/rss")")
done
median=$(printf '%s\n' "${peaks[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
decoded_kb=$(( 3062 * 2394 * 2 / 1024 ))
ratio=$(awk "BEGIN { printf \"%.2f\", $median / $decoded_kb }")
{
  echo "## Peak memory, largest image"
  echo
  echo "\`radlab render\` of \`fodicom_GH133_mg_breast_mlo.dcm\` (3062x2394, 12-bit, JPEG lossless, $(( $(stat -c %s "$file") / 1024 )) KiB on disk), full size to PNG: peak resident set (GNU time, median of $runs runs) against the decoded frame at 16 bits a sample."
  echo
  echo "| decoded frame | peak RSS (whole process) | ratio |"
  echo "|---|---|---|"
  echo "| $(( decoded_kb / 1024 )) MiB | $(( median / 1024 )) MiB | ${ratio}x |"
} > "$out"
rm -rf "$tmp"
