#!/usr/bin/env python3
"""50 readers working at once against radlab serve for 60 s, on SQLite and on PostgreSQL
(the load generator crates/radlab-server/examples/load.rs, release build, in-process
server): requests per second, p50 / p95 / p99 of the annotation calls, errors.

usage: bench/server_load.py OUT.md
Environment: RADLAB_LOAD_RUNS (default 3), RADLAB_LOAD_SECONDS (60), RADLAB_LOAD_READERS (50),
RADLAB_LOAD_SAVE_EVERY (2, seconds between saves), RADLAB_TEST_POSTGRES (an admin URL; the
PostgreSQL runs are skipped without it).
Each reader: list tasks, start the next, read its annotations, save them three times
`save-every` apart (one box more each time), submit, next. Medians over the runs.
"""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RADLAB_LOAD_RUNS", "3"))
SECONDS = os.environ.get("RADLAB_LOAD_SECONDS", "60")
READERS = os.environ.get("RADLAB_LOAD_READERS", "50")
SAVE_EVERY = os.environ.get("RADLAB_LOAD_SAVE_EVERY", "2")


def run(db):
    cmd = ["cargo", "run", "-q", "--release", "-p", "radlab-server", "--example", "load", "--",
           "--db", db, "--readers", READERS, "--seconds", SECONDS, "--save-every", SAVE_EVERY]
    env = dict(os.environ)
    env.setdefault("RADLAB_CORPUS", os.path.join(os.path.dirname(ROOT), "shared", "data"))
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def postgres_db(admin, name):
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name}", "-qc",
                    f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return admin.rsplit("/", 1)[0] + "/" + name


def main():
    out_md = sys.argv[1]
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "radlab-server", "--example", "load"],
                   cwd=ROOT, check=True)
    backends = [("SQLite", lambda i: "sqlite")]
    admin = os.environ.get("RADLAB_TEST_POSTGRES")
    if admin:
        backends.append(("PostgreSQL", lambda i: postgres_db(admin, f"radlab_load_{i}")))
    rows = []
    for name, db in backends:
        results = [run(db(i)) for i in range(RUNS)]
        if any(r["ran_out_of_tasks"] for r in results):
            sys.exit("the readers ran out of tasks before the end of the run: more images needed")
        if admin and name == "PostgreSQL":
            for i in range(RUNS):
                subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS radlab_load_{i} WITH (FORCE)"],
                               capture_output=True)
        med = lambda f: statistics.median(f(r) for r in results)  # noqa: E731
        rows.append((name, med(lambda r: r["requests_per_second"]), sum(r["errors"] for r in results),
                     med(lambda r: r["annotation_calls_ms"]["p50"]),
                     med(lambda r: r["annotation_calls_ms"]["p95"]),
                     med(lambda r: r["annotation_calls_ms"]["p99"]),
                     med(lambda r: r["requests"]),
                     med(lambda r: r["by_call_ms"]["wado frame"]["p50"]),
                     med(lambda r: r["by_call_ms"]["wado frame"]["p99"]),
                     med(lambda r: r["by_call_ms"]["wado metadata"]["p99"])))
    lines = [
        "## `radlab serve` under 50 readers",
        "",
        f"`bench/server_load.py`: {READERS} readers at once for {SECONDS} s (sign in, next task, start, "
        "open the image as a viewer does: its WADO-RS metadata, then frame 1 as stored with "
        "transfer-syntax=*, "
        f"read annotations, save three times {SAVE_EVERY} s apart, submit), against an in-process "
        "server (release build) on this machine's 2 cores, the load generator on the same cores; "
        f"medians of {RUNS} runs. The request rate is the readers' pace (a save every {SAVE_EVERY} s), "
        "not the server's ceiling; the latencies are the measure. The images are the corpus's "
        "DICOM files (radiographs, CT, MR, multi-frame XA...), each read by 20 of the readers.",
        "",
        "| catalog | requests per run | requests/s | errors (all runs) | annotation calls p50 | p95 | p99 | frame p50 | frame p99 | metadata p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rps, errors, p50, p95, p99, n, f50, f99, m99 in rows:
        lines.append(f"| {name} | {n:.0f} | {rps:.0f} | {errors} | {p50:.1f} ms | {p95:.1f} ms | {p99:.1f} ms "
                     f"| {f50:.1f} ms | {f99:.1f} ms | {m99:.1f} ms |")
    ok = all(r[2] == 0 and r[5] < 50 for r in rows)
    lines += ["", "Goal (issue 5): zero errors and p99 under 50 ms for annotation calls: "
              + ("met." if ok else "not met."), ""]
    with open(out_md, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
