#!/usr/bin/env python3
"""The seed's raw pool at scale (issue 5): a project of 100,000 images and 17 readers on
SQLite and on PostgreSQL, through the HTTP API of an in-process radlab serve (the example
crates/radlab-server/examples/scale.rs, release build): seconds to add the images to the
project and to assign 3 readers per image; p50 / p95 / p99 of a reader's worklist and of the
owner's progress. Medians over the runs.

usage: bench/scale.py [OUT.md]
Environment: RADLAB_SCALE_RUNS (default 3), RADLAB_SCALE_IMAGES (100000), RADLAB_SCALE_READERS
(17), RADLAB_SCALE_REQUESTS (200 per query), RADLAB_TEST_POSTGRES (an admin URL; the
PostgreSQL runs are skipped without it).
The section is written to OUT.md when given and put into BENCHMARKS.md between the markers
<!-- bench/scale.py begin --> and <!-- bench/scale.py end --> (appended when absent).
"""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RADLAB_SCALE_RUNS", "3"))
IMAGES = int(os.environ.get("RADLAB_SCALE_IMAGES", "100000"))
READERS = int(os.environ.get("RADLAB_SCALE_READERS", "17"))
REQUESTS = int(os.environ.get("RADLAB_SCALE_REQUESTS", "200"))
PER_IMAGE = 3
BEGIN = "<!-- bench/scale.py begin -->"
END = "<!-- bench/scale.py end -->"
QUERIES = [
    ("worklist_first_page_ms", "worklist, first page (`GET /api/v1/tasks?project=`)"),
    ("worklist_new_ms", "worklist, first page of NEW tasks (`&state=NEW`)"),
    ("worklist_deep_page_ms", "worklist, last page (`&offset={deep}`)"),
    ("progress_ms", "progress (`GET /api/v1/projects/{id}/progress`)"),
]


def run(db):
    exe = os.path.join(ROOT, "target", "release", "examples", "scale")
    cmd = [exe, "--db", db, "--images", str(IMAGES), "--readers", str(READERS),
           "--per-image", str(PER_IMAGE), "--requests", str(REQUESTS)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr)
    return result


def postgres_db(admin, name):
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", "-qc",
                    f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return admin.rsplit("/", 1)[0] + "/" + name


def cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "radlab-server", "--example", "scale"],
                   cwd=ROOT, check=True)
    backends = [("SQLite", lambda i: "sqlite")]
    admin = os.environ.get("RADLAB_TEST_POSTGRES")
    if admin:
        backends.append(("PostgreSQL", lambda i: postgres_db(admin, f"radlab_scale_{i}")))
    results = {}
    for name, db in backends:
        results[name] = []
        for i in range(RUNS):
            try:
                results[name].append(run(db(i)))
            finally:
                if name == "PostgreSQL":
                    subprocess.run(["psql", admin, "-qc",
                                    f"DROP DATABASE IF EXISTS radlab_scale_{i} WITH (FORCE)"],
                                   capture_output=True)

    def med(name, f):
        return statistics.median(f(r) for r in results[name])

    first = results["SQLite"][0]
    lines = [
        f"## A project of the seed's raw pool: {IMAGES:,} images, {READERS} readers",
        "",
        f"`bench/scale.py`: a project of {IMAGES:,} images and {READERS} annotators on each "
        f"catalog, driven through the HTTP API of an in-process `radlab serve` (release build) "
        f"on this machine's {os.cpu_count()} cores ({cpu()}), the client on the same cores; "
        f"medians of {RUNS} runs, each on a fresh catalog. The images: the corpus's "
        f"{first['source_files']} DICOM files that import, imported, then catalogued again "
        f"{IMAGES:,} times with new Study, Series and SOP Instance UIDs (2.25 UIDs) through "
        "`Catalog::insert_instances`; each copy's row points at its source file's blob (one "
        "blob per distinct source file, no file is written per copy), so the catalog holds "
        f"{IMAGES:,} distinct instances while the disk holds {first['source_files']} files. "
        f"Timed: adding all of them to the train split (`POST /api/v1/projects/{{id}}/images` "
        f"by import), setting an independent workflow of {PER_IMAGE} readers "
        f"and assigning (`POST .../assign`: {first['tasks']:,} tasks, "
        f"{first['tasks_of_r0']:,} for the reader measured); then {REQUESTS} requests "
        "in a row of each query (after 5 untimed), each a new connection, right after the "
        "assignment (every task NEW).",
        "",
        "| | " + " | ".join(name for name, _ in backends) + " |",
        "|---|" + "---:|" * len(backends),
    ]
    lines.append("| adding the images to the project | "
                 + " | ".join(f"{med(n, lambda r: r['add_seconds']):.2f} s" for n, _ in backends) + " |")
    lines.append(f"| assigning {PER_IMAGE} readers per image | "
                 + " | ".join(f"{med(n, lambda r: r['assign_seconds']):.2f} s" for n, _ in backends) + " |")
    worst = {n: 0.0 for n, _ in backends}
    for key, label in QUERIES:
        label = label.replace("{deep}", str(first["worklist_deep_offset"]))
        cells = []
        for n, _ in backends:
            p = [med(n, lambda r, q=q: r[key][q]) for q in ("p50", "p95", "p99")]
            worst[n] = max(worst[n], p[2])
            cells.append(f"{p[0]:.1f} / {p[1]:.1f} / {p[2]:.1f} ms")
        lines.append(f"| {label}: p50 / p95 / p99 | " + " | ".join(cells) + " |")
    lines.append("| (not timed by the goals) cataloguing the copies | "
                 + " | ".join(f"{med(n, lambda r: r['catalogue_seconds']):.1f} s" for n, _ in backends) + " |")
    assign_ok = all(med(n, lambda r: r["assign_seconds"]) < 10 for n, _ in backends)
    query_ok = all(w < 50 for w in worst.values())
    lines += [
        "",
        "Goals (issue 5): assignment under 10 s: "
        + ("met" if assign_ok else "not met")
        + " (" + ", ".join(f"{n} {med(n, lambda r: r['assign_seconds']):.1f} s" for n, _ in backends)
        + "); worklist and progress under 50 ms at p99: "
        + ("met" if query_ok else "not met")
        + " (slowest p99: " + ", ".join(f"{n} {w:.1f} ms" for n, w in worst.items()) + ")."
        + ("" if admin else " PostgreSQL not measured: RADLAB_TEST_POSTGRES is not set."),
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write(section)
    bench_md = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(bench_md).read() if os.path.exists(bench_md) else "# Benchmarks\n"
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(bench_md, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")


if __name__ == "__main__":
    main()
