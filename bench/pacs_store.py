#!/usr/bin/env python3
"""C-STORE receive throughput: radlab pacs listen (plain and with --deid annex-e-basic) next to
dcmtk storescp writing files to disk and Orthanc, the same send set pushed by dcmtk storescu.

usage: bench/pacs_store.py RADLAB_BIN CORPUS_DIR OUT.md
Environment: RADLAB_PACS_STORE_COPIES (copies of each corpus radiograph, default 20),
RADLAB_PACS_STORE_RUNS (runs per receiver, default 3).

The send set: every Part 10 file of CORPUS/dicom/cxr and CORPUS/dicom/cxr_derived, copied
COPIES times, each copy given a new SOP Instance UID with `dcmodify -nb -m (0008,0018)=...`
(the file meta group follows), each file keeping its own transfer syntax. storescu is run
with a configuration (`-xf`) proposing one presentation context per SOP class and transfer
syntax of the send set, each with that one transfer syntax, so every object is sent as
stored; `+sd +r` over the folder, one association. A run is timed from the
start of storescu to its exit (every object acknowledged); every receiver starts each run on
a fresh empty folder (catalog, blob store, storage), and the objects it holds afterwards are
counted: a run where any object is missing, or storescu fails, stops the bench. The
receivers take turns run by run (round robin), so a burst of load from elsewhere on the
machine falls on all of them.

Receivers:
- radlab: `radlab pacs listen --data-dir D` (SQLite catalog and local blob folder; each
  object staged and synced, parsed, every frame decoded, hashed, blob written, catalogued,
  then acknowledged);
- radlab --deid: the same with `--deid annex-e-basic --key-file K` (a 32-byte key);
- storescp: dcmtk `storescp +xa -od D` (accepts every transfer syntax it knows, writes each
  object to a file, no decode, no index);
- Orthanc: the Debian package, no plugins, a fresh StorageDirectory and SQLite index, its
  DICOM server on a free port (it parses and indexes each object, no pixel decode);
- storescp, Nagle on: storescp again with dcmtk's default, Nagle's algorithm on (see
  dcmtk_env); every other run sets TCP_NODELAY=1 for storescu, storescp and Orthanc.
"""
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

COPIES = int(os.environ.get("RADLAB_PACS_STORE_COPIES", "20"))
RUNS = int(os.environ.get("RADLAB_PACS_STORE_RUNS", "3"))
SOURCES = ("dicom/cxr", "dicom/cxr_derived")
TS_NAMES = {
    "1.2.840.10008.1.2": "Implicit VR LE",
    "1.2.840.10008.1.2.1": "Explicit VR LE",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}


def dcmtk_env(nodelay):
    """The environment of a dcmtk program (storescu, storescp, and Orthanc, which links the
    system's dcmtk): TCP_NODELAY=1 turns Nagle's algorithm off. Debian's dcmtk leaves it on by
    default, and then every object waits for a delayed ACK (about 40 ms on Linux loopback):
    storescu to storescp takes about 50 ms per object whatever its size, even with storescp
    --ignore, which measures the TCP stack, not the receiver."""
    env = dict(os.environ)
    env.pop("TCP_NODELAY", None)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{what} exited while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start")


def is_part10(path):
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def uid(path, tag):
    out = subprocess.run(["dcmdump", "-q", "-Un", "+P", tag, path], check=True,
                         capture_output=True, text=True).stdout
    return out.split("[", 1)[1].split("]", 1)[0].rstrip("\0 ")


def transfer_syntax(path):
    return uid(path, "0002,0010")


def write_storescu_config(pairs, path):
    """A storescu configuration proposing one presentation context per (SOP class, transfer
    syntax) of the send set, each with that single transfer syntax, so every object travels
    as stored (storescu's -R puts the uncompressed syntaxes beside a compressed one in the
    same context, and storescp +xa then picks the uncompressed one, which storescu cannot
    convert RLE or JPEG 2000 into)."""
    syntaxes = sorted({ts for _, ts in pairs})
    lines = ["[[TransferSyntaxes]]"]
    for i, ts in enumerate(syntaxes):
        lines += [f"[TS{i}]", f"TransferSyntax1 = {ts}"]
    lines += ["[[PresentationContexts]]", "[Contexts]"]
    for i, (sop, ts) in enumerate(sorted(pairs)):
        lines.append(f"PresentationContext{i + 1} = {sop}\\TS{syntaxes.index(ts)}")
    lines += ["[[Profiles]]", "[Bench]", "PresentationContexts = Contexts", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def build_send_set(corpus, dest):
    sources = []
    for rel in SOURCES:
        d = os.path.join(corpus, rel)
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isfile(p) and is_part10(p):
                sources.append(p)
    if not sources:
        sys.exit(f"no Part 10 files under {corpus}/{{{','.join(SOURCES)}}}")
    syntaxes = {}
    pairs = set()
    for src in sources:
        ts = transfer_syntax(src)
        syntaxes[ts] = syntaxes.get(ts, 0) + COPIES
        pairs.add((uid(src, "0008,0016"), ts))
    write_storescu_config(pairs, os.path.join(os.path.dirname(dest), "storescu.cfg"))
    os.makedirs(dest)
    total = 0
    for i in range(COPIES):
        for src in sources:
            out = os.path.join(dest, f"c{i:03d}_{os.path.basename(src)}")
            shutil.copyfile(src, out)
            new_uid = f"2.25.{uuid.uuid4().int}"
            subprocess.run(["dcmodify", "-q", "-nb", "-m", f"(0008,0018)={new_uid}", out],
                           check=True, capture_output=True)
            if transfer_syntax(out) != transfer_syntax(src):
                sys.exit(f"dcmodify changed the transfer syntax of {out}")
            total += os.path.getsize(out)
    return sources, COPIES * len(sources), total, syntaxes


class Radlab:
    def __init__(self, binary, work, deid, ack="queued"):
        self.binary = binary
        self.deid = deid
        self.ack = ack
        self.name = ("radlab --deid" if deid else "radlab") + (
            "" if ack == "queued" else f" --ack {ack}")
        self.aet = "RADLAB"
        self.key = os.path.join(work, "key")
        if deid and not os.path.exists(self.key):
            with open(self.key, "wb") as f:
                f.write(os.urandom(32))

    def start(self, target):
        self.data = target
        cmd = [self.binary, "pacs", "listen", "--aet", self.aet, "--bind", "127.0.0.1",
               "--port", "0", "--ack", self.ack, "--data-dir", target]
        if self.deid:
            cmd += ["--deid", "annex-e-basic", "--key-file", self.key]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        for line in self.proc.stdout:
            if line.startswith("radlab pacs listening on"):
                self.port = int(line.split()[4].rsplit(":", 1)[1])
                break
        else:
            sys.exit(f"{self.name} exited while starting")
        wait_port(self.port, self.proc, self.name)

    def settle(self):
        """Wait until the spool is empty (every acknowledged object imported or failed)."""
        spool = os.path.join(self.data, "incoming", "spool")
        while os.path.isdir(spool) and any(n.endswith(".dcm") for n in os.listdir(spool)):
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with objects spooled")
            time.sleep(0.02)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    def count(self):
        db = sqlite3.connect(os.path.join(self.data, "catalog.db"))
        try:
            return db.execute("SELECT COUNT(*) FROM instances").fetchone()[0]
        finally:
            db.close()


class Storescp:
    aet = "STORESCP"

    def __init__(self, nodelay=True):
        self.nodelay = nodelay
        self.name = "storescp" if nodelay else "storescp, Nagle on"

    def start(self, target):
        self.dir = target
        os.makedirs(target)
        self.port = free_port()
        self.proc = subprocess.Popen(["storescp", "+xa", "-aet", self.aet, "-od", target,
                                      str(self.port)], env=dcmtk_env(self.nodelay),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, self.name)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    def count(self):
        return len(os.listdir(self.dir))


class Orthanc:
    name = "Orthanc"
    aet = "ORTHANC"

    def start(self, target):
        os.makedirs(target)
        self.http = free_port()
        self.port = free_port()
        config = {
            "Name": "bench", "StorageDirectory": os.path.join(target, "db"),
            "IndexDirectory": os.path.join(target, "db"), "HttpPort": self.http,
            "DicomServerEnabled": True, "DicomAet": self.aet, "DicomPort": self.port,
            "RemoteAccessAllowed": True, "AuthenticationEnabled": False, "Plugins": [],
        }
        path = os.path.join(target, "orthanc.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.proc = subprocess.Popen(["Orthanc", path], env=dcmtk_env(True),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.http, self.proc, self.name)
        wait_port(self.port, self.proc, self.name)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    def count(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/statistics", timeout=60) as r:
            return json.load(r)["CountInstances"]


def send(receiver, send_dir):
    config = os.path.join(os.path.dirname(send_dir), "storescu.cfg")
    cmd = ["storescu", "-xf", config, "Bench", "+sd", "+r", "-aet", "BENCH", "-aec", receiver.aet,
           "127.0.0.1", str(receiver.port), send_dir]
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True,
                       env=dcmtk_env(getattr(receiver, "nodelay", True)))
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{receiver.name}: storescu failed ({p.returncode}): {p.stderr[-2000:]}")
    # Acknowledged is stored for every receiver but radlab's spool, which imports after.
    if hasattr(receiver, "settle"):
        receiver.settle()
    return elapsed, time.perf_counter() - start, p.stderr


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = (out.stdout or out.stderr).strip().splitlines()[0]
        return line.strip("$ ").removeprefix("dcmtk: ")
    except (OSError, IndexError):
        return "?"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    radlab, corpus, out_md = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    for tool in ("storescu", "storescp", "dcmodify", "dcmdump", "Orthanc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: scripts/setup-system dcmtk orthanc")
    with tempfile.TemporaryDirectory(prefix="radlab-pacs-store-") as work:
        send_dir = os.path.join(work, "send")
        sources, n, nbytes, syntaxes = build_send_set(corpus, send_dir)
        print(f"send set: {n} objects, {nbytes / 1e6:.0f} MB", file=sys.stderr)
        receivers = [Radlab(radlab, work, False), Radlab(radlab, work, True),
                     Radlab(radlab, work, False, "imported"),
                     Radlab(radlab, work, True, "imported"), Storescp(), Orthanc(),
                     Storescp(nodelay=False)]
        times = {r.name: [] for r in receivers}
        stored = {r.name: [] for r in receivers}
        loads = []
        for run in range(RUNS):
            for r in receivers:
                target = os.path.join(work, "target")
                shutil.rmtree(target, ignore_errors=True)
                os.sync()
                r.start(target)
                try:
                    load0 = os.getloadavg()[0]
                    t, t_stored, log = send(r, send_dir)
                    loads.append((load0, os.getloadavg()[0]))
                    got = r.count()
                finally:
                    r.stop()
                if got != n:
                    sys.exit(f"{r.name}: {got} of {n} objects arrived; storescu said:\n{log[-3000:]}")
                times[r.name].append(t)
                stored[r.name].append(t_stored)
                print(f"run {run + 1} {r.name}: {t:.2f} s ({t_stored:.2f} s stored), "
                      f"{n / t:.1f} objects/s, "
                      f"{nbytes / 1e6 / t:.1f} MB/s, load {load0:.2f} -> {loads[-1][1]:.2f}",
                      file=sys.stderr)
        shutil.rmtree(os.path.join(work, "target"), ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    med_stored = {name: statistics.median(ts) for name, ts in stored.items()}
    ts_text = ", ".join(f"{TS_NAMES.get(ts, ts)} {k}" for ts, k in
                        sorted(syntaxes.items(), key=lambda kv: -kv[1]))
    load_lo = min(min(a, b) for a, b in loads)
    load_hi = max(max(a, b) for a, b in loads)
    lines = [
        "## C-STORE receive throughput (radlab pacs listen vs storescp vs Orthanc)",
        "",
        f"`bench/pacs_store.py`: the same send set pushed over loopback by dcmtk "
        f"`storescu -xf CONFIG +sd +r` (one association; one presentation context per SOP "
        f"class and transfer syntax of the set, each proposing only that syntax, so each "
        f"object is sent as stored, nothing converted) to each receiver, on the same machine "
        f"({os.cpu_count()} cores, sender and receiver sharing them), a fresh empty target every "
        f"run. Time from the start of storescu to its exit (every object acknowledged); "
        f"median of {RUNS} runs per receiver, the receivers taking turns; the objects held "
        f"afterwards were counted every run (all {n} each time). The send set: the "
        f"{len(sources)} Part 10 radiographs of the corpus (`dicom/cxr`, `dicom/cxr_derived`; "
        f"440 x 440 to 1841 x 1955, 8 and 16 bits) copied {COPIES} times with new SOP "
        f"Instance UIDs: {n} objects, {nbytes / 1e6:.0f} MB ({ts_text}).",
        "",
        "- radlab: `radlab pacs listen --data-dir D` (release build, SQLite catalog, local blob "
        "folder), acknowledging once spooled (the default, `--ack queued`): each object "
        "staged, synced, renamed into the spool folder and the folder synced, then "
        "acknowledged; a worker thread imports the spool in batches (parse, decode "
        "every frame, hash, blob, catalogue) on both cores once arrivals pause for 300 ms "
        "(or after 10 s of continuous arrivals), at a lower CPU priority (nice 10).",
        "- radlab --deid: the same with `--deid annex-e-basic --key-file K`: the worker "
        "de-identifies and verifies each object before the import.",
        "- radlab --ack imported, radlab --deid --ack imported: acknowledging each object "
        "only once it is imported (de-identified first), one object at a time.",
        f"- storescp: {tool_version(['storescp', '--version'])} `storescp +xa -od D`: each "
        "object written to a file, no decode, no index.",
        f"- Orthanc: {tool_version(['Orthanc', '--version'])} (Debian package, no plugins, "
        "SQLite index, storage folder): parses and indexes each object, no pixel decode.",
        "- storescp, Nagle on: storescp again with dcmtk's default TCP settings. Debian's dcmtk "
        "(and Orthanc, which links it) leaves Nagle's algorithm on unless `TCP_NODELAY=1` is "
        "in the environment, and then every object waits for a delayed ACK (about 40 ms on "
        f"loopback): {med['storescp, Nagle on'] / n * 1000:.0f} ms per object here, about "
        "the same whatever the object's size and with `storescp "
        "--ignore` (nothing written), so this row measures the TCP stack, not the receiver. "
        "Every other row runs storescu, storescp and Orthanc with `TCP_NODELAY=1` (radlab "
        "itself needs no setting).",
        "",
        "Two times per receiver: until storescu exits (every object acknowledged), and until "
        "every object is stored where the receiver keeps it. They differ only for radlab "
        "acknowledging once spooled: the second waits for its spool to be imported "
        "(storescp and Orthanc store before they acknowledge).",
        "",
        "| receiver | acknowledged: median | objects/s | MB/s | runs (s) | all stored: median "
        "| objects/s | storescp's time over this (acknowledged, stored) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in med.items():
        st = med_stored[name]
        lines.append(f"| {name} | {t:.2f} s | {n / t:.1f} | {nbytes / 1e6 / t:.1f} | "
                     f"{', '.join(f'{x:.2f}' for x in times[name])} | {st:.2f} s | "
                     f"{n / st:.1f} | {med['storescp'] / t:.2f}x, "
                     f"{med_stored['storescp'] / st:.2f}x |")
    lines += [
        "",
        "MB: 10^6 bytes of the Part 10 files sent. Ratio: storescp's time over the "
        "receiver's (above 1: faster than storescp). Load average (1 min) around the runs: "
        f"{load_lo:.1f} to {load_hi:.1f}.",
    ]
    ack = med["storescp"] / med["radlab --deid"]
    full = med_stored["storescp"] / med_stored["radlab --deid"]
    lines += [
        "",
        f"Goal (issue 7): at least as fast as storescp, with de-identification on: "
        f"{'met' if ack >= 1 else 'not met'} for reception (radlab --deid acknowledges the "
        f"send set at {ack:.2f}x storescp's speed, median of {RUNS} runs; its runs "
        f"{min(times['radlab --deid']):.2f} to {max(times['radlab --deid']):.2f} s, storescp's "
        f"{min(times['storescp']):.2f} to {max(times['storescp']):.2f} s); the import behind "
        f"it, every frame decoded, "
        f"de-identified, verified and catalogued, finishes at {full:.2f}x storescp's speed "
        f"(storescp only writes files).",
    ]
    section = "\n".join(lines) + "\n"
    with open(out_md, "w") as f:
        f.write(section)
    print(section)


if __name__ == "__main__":
    main()
