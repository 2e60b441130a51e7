#!/usr/bin/env python3
"""Time to first frame through WADO-RS: radlab serve next to Orthanc (Debian package, with
its DICOMweb plugin and the GDCM plugin that decodes JPEG 2000), serving the same file.

usage: bench/wado_ttff.py OUT.md
Environment: RADLAB_TTFF_COLD (cold starts per server and form, default 5),
RADLAB_TTFF_WARM (cached requests, default 30), RADLAB_TTFF_FILES (corpus paths, comma
separated; default the 1,841 x 1,955 16-bit JPEG 2000 chest radiograph RG1_J2KI and the
2,048 x 2,500 lossless JPEG 2000 radiograph of a hand).

For each file and each form of the frame:
- "as stored": Accept multipart/related; type="application/octet-stream"; transfer-syntax=*
  (the JPEG 2000 bitstream, what OHIF asks for and decodes in the browser);
- "decoded": the same with transfer-syntax=1.2.840.10008.1.2.1 (the server decodes).
Cold: a freshly started server process, the first request for that frame (the operating
system's file cache is warm for both). Cached: the same request again, the median of the
repeats. Each time is from sending the request to the last byte of the answer, over
loopback, with a new connection. Every answer is checked: status 200, multipart, and for
"decoded" exactly rows x columns x 2 bytes of pixels.
"""
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.environ.get("RADLAB_CORPUS", os.path.join(ROOT, "..", "shared", "data"))
COLD = int(os.environ.get("RADLAB_TTFF_COLD", "5"))
WARM = int(os.environ.get("RADLAB_TTFF_WARM", "30"))
FILES = os.environ.get(
    "RADLAB_TTFF_FILES",
    "dicom/cxr/nema_wg04_RG1_J2KI_cr_chest_pa_mono1.dcm,dicom/other/kakadu_cr_hand_pa_j2k.dcm",
).split(",")
RADLAB = os.path.join(ROOT, "target", "release", "radlab")
# Seconds between a server answering its health check and the timed request, for both.
SETTLE = 0.5
ORTHANC_PLUGINS = "/usr/share/orthanc/plugins"
FORMS = {
    "as stored": 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    "decoded": 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    elapsed = time.perf_counter() - start
    conn.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data, elapsed


def wait_up(port, path, proc, what):
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{what} exited while starting")
        try:
            status, _, _, _ = request(port, "GET", path)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{what} did not start")


def dicom_uids(path):
    out = subprocess.run(["dcmdump", "+P", "0020,000d", "+P", "0020,000e", "+P", "0008,0018",
                          "+P", "0028,0010", "+P", "0028,0011", path],
                         check=True, capture_output=True, text=True).stdout
    vals = [line.split("[", 1)[1].split("]", 1)[0] if "[" in line else line.split()[2]
            for line in out.splitlines() if line.strip()]
    return {"study": vals[0], "series": vals[1], "sop": vals[2], "rows": int(vals[3]),
            "columns": int(vals[4])}


def check_frame(status, headers, body, form, uids, what):
    if status != 200:
        sys.exit(f"{what}: status {status}: {body[:300]!r}")
    ctype = headers.get("content-type", "")
    if not ctype.startswith("multipart/related"):
        sys.exit(f"{what}: not multipart: {ctype}")
    if form == "decoded":
        pixels = uids["rows"] * uids["columns"] * 2
        if len(body) < pixels or len(body) > pixels + 2000:
            sys.exit(f"{what}: {len(body)} bytes for {pixels} bytes of pixels: not decoded?")


class Radlab:
    name = "radlab"

    def __init__(self, files, work):
        self.data = os.path.join(work, "radlab")
        env = dict(os.environ, RADLAB_DATA=self.data)
        env.pop("RADLAB_DB", None)
        env.pop("RADLAB_STORE", None)
        self.env = env
        subprocess.run([RADLAB, "import", *files], env=env, check=True, capture_output=True)
        subprocess.run([RADLAB, "user", "add", "bench", "--admin", "--password-stdin"], env=env,
                       input="bench password 1", text=True, check=True, capture_output=True)
        self.start()
        _, h, body, _ = request(self.port, "POST", "/api/v1/auth/login",
                                {"content-type": "application/json"},
                                json.dumps({"username": "bench", "password": "bench password 1"}))
        cookie = h["set-cookie"].split(";")[0]
        csrf = json.loads(body)["csrf_token"]
        auth = {"cookie": cookie, "x-csrf-token": csrf, "content-type": "application/json"}
        _, _, body, _ = request(self.port, "POST", "/api/v1/tokens", auth, json.dumps({"name": "bench"}))
        self.token = json.loads(body)["token"]
        bearer = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
        request(self.port, "POST", "/api/v1/projects", bearer,
                json.dumps({"project_id": "bench", "template": "vindr-cxr"}))
        status, _, body, _ = request(self.port, "POST", "/api/v1/projects/bench/images", bearer,
                                     json.dumps({"all": True, "split": "train"}))
        if status != 200:
            sys.exit(f"radlab: adding images: {status} {body[:200]!r}")
        self.stop()

    def start(self):
        self.proc = subprocess.Popen([RADLAB, "serve", "--listen", "127.0.0.1:0"], env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if line.startswith("radlab serving on http://"):
                self.port = int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
                break
        wait_up(self.port, "/api/v1/health", self.proc, "radlab")
        time.sleep(SETTLE)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    def frame(self, uids, accept):
        path = (f"/api/v1/projects/bench/dicomweb/studies/{uids['study']}/series/{uids['series']}"
                f"/instances/{uids['sop']}/frames/1")
        return request(self.port, "GET", path,
                       {"accept": accept, "authorization": f"Bearer {self.token}"})


class Orthanc:
    name = "Orthanc"

    def __init__(self, files, work):
        self.dir = os.path.join(work, "orthanc")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        plugins = [os.path.join(ORTHANC_PLUGINS, p) for p in sorted(os.listdir(ORTHANC_PLUGINS))
                   if p.endswith(".so") and ("DicomWeb" in p or "Gdcm" in p or "gdcm" in p)]
        self.plugins = plugins
        config = {
            "Name": "bench", "StorageDirectory": os.path.join(self.dir, "db"),
            "IndexDirectory": os.path.join(self.dir, "db"), "HttpPort": self.port,
            "DicomServerEnabled": False, "RemoteAccessAllowed": True,
            "AuthenticationEnabled": False, "Plugins": plugins,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpCompressionEnabled": False,
        }
        self.config = os.path.join(self.dir, "orthanc.json")
        with open(self.config, "w") as f:
            json.dump(config, f)
        self.start()
        for path in files:
            with open(path, "rb") as f:
                status, _, body, _ = request(self.port, "POST", "/instances",
                                             {"content-type": "application/dicom"}, f.read())
            if status != 200:
                sys.exit(f"Orthanc: storing {path}: {status} {body[:200]!r}")
        self.stop()

    def start(self):
        self.proc = subprocess.Popen(["Orthanc", self.config], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_up(self.port, "/system", self.proc, "Orthanc")
        time.sleep(SETTLE)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    def frame(self, uids, accept):
        path = (f"/dicom-web/studies/{uids['study']}/series/{uids['series']}"
                f"/instances/{uids['sop']}/frames/1")
        return request(self.port, "GET", path, {"accept": accept})


def start_warm(server, uids, accept):
    """Start the server and ask for the frame once (not timed); the dropped tries."""
    for dropped in range(10):
        server.start()
        try:
            server.frame(uids, accept)
            return dropped
        except OSError:
            server.stop()
    sys.exit(f"{server.name}: the warm-up request failed 10 times")


def measure(server, uids, form, accept):
    cold = []
    failures = 0
    while len(cold) < COLD:
        server.start()
        try:
            status, headers, body, t = server.frame(uids, accept)
        except OSError as e:
            # Orthanc sometimes drops the first connection after a restart (its index is
            # still being opened); count it and start again.
            failures += 1
            server.stop()
            if failures > 3 * COLD:
                sys.exit(f"{server.name} cold {form}: {e}")
            continue
        check_frame(status, headers, body, form, uids, f"{server.name} cold {form}")
        cold.append(t * 1000)
        server.stop()
    if failures:
        print(f"{server.name} {form}: {failures} cold start(s) dropped the first request", file=sys.stderr)
    warm = []
    crashes = start_warm(server, uids, accept)
    while len(warm) < WARM:
        try:
            status, headers, body, t = server.frame(uids, accept)
        except OSError as e:
            # The server died under the request (seen: Orthanc 1.10 with the GDCM plugin
            # segfaults in libgdcmMSFF on a civetweb worker thread after a few decoded
            # frames). Count it, restart, warm up again, go on.
            crashes += 1
            if crashes > WARM:
                sys.exit(f"{server.name} cached {form}: {e}")
            server.stop()
            crashes += start_warm(server, uids, accept)
            continue
        check_frame(status, headers, body, form, uids, f"{server.name} cached {form}")
        warm.append(t * 1000)
    server.stop()
    return statistics.median(cold), statistics.median(warm), len(body), failures + crashes


def main():
    out_md = sys.argv[1]
    if not shutil.which("Orthanc"):
        sys.exit("Orthanc is not installed: scripts/setup-system orthanc orthanc-dicomweb orthanc-gdcm")
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "radlab"], cwd=ROOT, check=True)
    files = [os.path.join(CORPUS, f) for f in FILES]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        servers = [Radlab(files, work), Orthanc(files, work)]
        for rel, path in zip(FILES, files):
            uids = dicom_uids(path)
            for form, accept in FORMS.items():
                results = {s.name: measure(s, uids, form, accept) for s in servers}
                rows.append((os.path.basename(rel), uids, form, results))
                print(rel, form, results, file=sys.stderr)
    orthanc_plugins = ", ".join(os.path.basename(p) for p in servers[1].plugins)
    lines = [
        "## Time to first frame through WADO-RS (radlab serve vs Orthanc)",
        "",
        f"`bench/wado_ttff.py`: frame 1 of each file through `.../frames/1`, radlab serve (release "
        f"build, SQLite, local blob folder) next to Orthanc {orthanc_version()} with "
        f"{orthanc_plugins}, same machine (2 cores), loopback, a new connection per request. "
        f"Cold: the first request to a freshly started server, median of {COLD} starts. "
        f"Cached: the same request again, median of {WARM}. Milliseconds, request sent to last "
        "byte received. Goal: faster than Orthanc cold, under 20 ms cached.",
        "",
        "| file | size | form | radlab cold | Orthanc cold | ratio | radlab cached | Orthanc cached | ratio | bytes | failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, uids, form, res in rows:
        rc, rw, n, rf = res["radlab"]
        oc, ow, _, of = res["Orthanc"]
        lines.append(
            f"| {name} | {uids['columns']} x {uids['rows']} | {form} | {rc:.1f} | {oc:.1f} | "
            f"{oc / rc:.1f}x | {rw:.2f} | {ow:.2f} | {ow / rw:.1f}x | {n:,} | {rf} / {of} |")
    lines.append("")
    lines.append("Ratio: Orthanc's time over radlab's (above 1: radlab is faster). Failures: requests "
                 "a server dropped (its process died or closed the connection), radlab / Orthanc; "
                 "the server was restarted and the request not counted. Orthanc 1.10 with its GDCM "
                 "plugin segfaults in libgdcmMSFF (on a civetweb worker thread) after a few decoded "
                 "JPEG 2000 frames, and sometimes drops the first request after a restart.")
    section = "\n".join(lines) + "\n"
    with open(out_md, "w") as f:
        f.write(section)
    print(section)


def orthanc_version():
    try:
        out = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True).stdout
        return out.split()[1] if out else "?"
    except (OSError, IndexError):
        return "?"


if __name__ == "__main__":
    main()
