#!/usr/bin/env python3
"""The triage network on the CPU: radlab against the same network in PyTorch.

usage: bench/triage.py [RADLAB_BINARY CORPUS_DIR OUT.md] [--weights W] [--runs N]
                       [--rounds N] [--cold-runs N] [--latency-images K] [--example PATH]

Run by bench/run, or alone: `bench/triage.py` (defaults: RADLAB_BINARY target/release/radlab
when it exists, "-" skips `radlab import`; CORPUS_DIR $RADLAB_CORPUS or ../shared/data; OUT.md
bench/out/triage.md). Weights: --weights, else crates/radlab-triage/weights/triage.safetensors
when present, else a seeded untrained network written by the example (the times do not
depend on the values; the section says which it was).

The images: every file of CORPUS_DIR/dicom/cxr and dicom/cxr_derived and every PNG and JPEG
under png/cxr (files radlab cannot load are skipped and counted). The network-only timings
run each image's 16 views (the image scaled to fit 64 x 64 in its 8 orientations, then
inverted in the 8), so there images/s counts 16 network inputs an image; `model::judge` (and
`radlab triage`) looks at the inverted 8 only for the images the first 8 do not settle
(`model::settled`), which the section counts.

radlab's side is crates/radlab-triage/examples/triage_bench.rs (release build; built here
with cargo when missing, in $CARGO_TARGET_DIR or target/). It decodes each file
(`preprocess::load_grey`), writes the views (`model::views`, float32) to bench/out/triage/
views.f32 with the network's softmax outputs for every view (rust_probs.f32) and its
verdicts, and times `model::judge` from the decoded pixels, decode + judge file after file
(end to end) and decode alone; with the shipped weights, those timings are of the whole
built-in model (`--laterality-weights`: the left-right network looking again at each image
called frontal), as `radlab triage` runs it.
PyTorch's side (this script, in .venv-bench-torch): the same layers (nn.Conv2d 3x3 padding 1
with bias, ReLU, 2x2 max pooling, 1 -> 16 -> 32 -> 64 -> 64 channels, the last 64 x 4 x 4 map
flattened, nn.Linear 1024 -> 12, softmax over the 4 class then over the 8 orientation
logits), eager mode, float32,
the weights read from the same safetensors file, on the very bytes of views.f32, under
torch.inference_mode() with torch.set_num_threads(cores) (radlab too uses every core). Its
outputs must match rust_probs.f32 within 1e-4 (max abs difference) or the script fails; its
verdicts through model.rs's decision rule (re-written here) are compared with radlab's.

Timed:
  - network only, warm: ROUNDS turns of radlab (`triage_bench --network`, calling
    `Classifier::outputs`) then PyTorch, each RUNS passes over all the views after an
    untimed one, 64 views (4 images) a call as `judge` batches them; and one image (its 16
    views in one call) over the first K images; then the passes again on one thread each
    (RAYON_NUM_THREADS=1 for radlab, torch.set_num_threads(1)), which other work on the
    machine disturbs less. Medians of all passes / calls, and the fastest passes.
  - cold: a fresh process from its start to its first verdict printed (time.perf_counter
    around subprocess.Popen, up to that line), COLD_RUNS times, alternating: radlab's
    example and a fresh Python (import torch, build the network, read the weights), both
    from the first image's prepared views; and radlab decoding and judging the first file.
  - the two commands on the same files, when a radlab binary is there, alternating, each a
    fresh process on all cores, median of 3 runs after an untimed one: `radlab import
    --check decode --no-skip-known` into a fresh catalog and blob store, and `radlab triage
    --json` (which must print a verdict per file). The goal: triage at least as fast.

The section is written to OUT.md and put into BENCHMARKS.md between the markers
<!-- bench/triage.py begin --> and <!-- bench/triage.py end --> (appended when absent).

.venv-bench-torch is made from bench/triage-requirements.txt: torch from PyPI (its Linux
wheel is the CUDA build and pulls the nvidia-* / cuda-* runtime wheels, about 5 GB; PyPI
has no CPU-only torch wheel for Linux and is the only index this project uses; only the CPU
is used here) and NumPy (torch warns at import without it). The safetensors file is parsed
by hand (8-byte header length, JSON header, raw little-endian data).
"""
import argparse
import json
import math
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv-bench-torch")
BEGIN = "<!-- bench/triage.py begin -->"
END = "<!-- bench/triage.py end -->"
SIDE = 64
VIEWS = 16
OUTPUTS = 12
TOLERANCE = 1e-4


def ensure_venv():
    """Re-run this script in .venv-bench-torch (made on first use) unless torch imports."""
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py) or subprocess.run([py, "-c", "import torch"],
                                                capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                        os.path.join(ROOT, "bench", "triage-requirements.txt")], check=True)
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        sys.exit("torch does not import in .venv-bench-torch")
    os.execv(py, [py] + sys.argv)


# --- the network in PyTorch -----------------------------------------------------------------

def read_safetensors(path):
    """{name: float32 tensor} from a safetensors file, parsed by hand."""
    import torch
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[a:b]), dtype=torch.float32)
        tensors[name] = t.reshape(info["shape"])
    return tensors


def build_net(weights_path):
    """The triage network of model.rs, with the weights of `weights_path`, in eval mode."""
    import torch
    from torch import nn

    class TriageNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [1, 16, 32, 64, 64]
            self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=True)
                                       for a, b in zip(chans, chans[1:]))
            # The last map (64 channels, 4 x 4) flattened, channel-major.
            self.head = nn.Linear(chans[-1] * 4 * 4, OUTPUTS)

        def forward(self, x):
            for conv in self.convs:
                x = nn.functional.max_pool2d(torch.relu(conv(x)), 2)
            logits = self.head(x.flatten(1))
            return torch.cat([logits[:, :4].softmax(1), logits[:, 4:].softmax(1)], 1)

    net = TriageNet()
    tensors = read_safetensors(weights_path)
    state = {}
    for i in range(4):
        state[f"convs.{i}.weight"] = tensors[f"conv{i}.weight"]
        state[f"convs.{i}.bias"] = tensors[f"conv{i}.bias"]
    state["head.weight"] = tensors["head.weight"]
    state["head.bias"] = tensors["head.bias"]
    net.load_state_dict(state, strict=True)
    return net.eval()


def read_views(path, images=None):
    """views.f32 as a [images * 16, 1, 64, 64] tensor (all of it, or the first `images`)."""
    import torch
    size = VIEWS * SIDE * SIDE * 4
    with open(path, "rb") as f:
        data = f.read() if images is None else f.read(images * size)
    return torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(-1, 1, SIDE, SIDE)


SETTLED_CLASS = 0.9     # model::SETTLED_CLASS
SETTLED_ORIENTATION = 8.0  # model::SETTLED_ORIENTATION, nats


def orientation_scores(p, table):
    """For each orientation o, the sum over the views k of log p_k[compose(k, o)]."""
    return [sum(math.log(max(p[k][4 + table[k % 8][o]], 1e-12)) for k in range(len(p)))
            for o in range(8)]


def settled(p, table):
    """model::settled on an image's first 8 rows: a sure class and a clear orientation."""
    shown = [sum(p[k][c] for k in range(8)) / 8 for c in range(4)]
    scores = sorted(orientation_scores(p[:8], table), reverse=True)
    return max(shown) >= SETTLED_CLASS and scores[0] - scores[1] >= SETTLED_ORIENTATION


def decide(p, table):
    """model::decide on one image's 16 rows of 12 probabilities: (class, orientation). The
    inversion's 8 rows are used only when the first 8 do not settle the image."""
    if settled(p, table):
        p = p[:8]
    shown = [sum(p[k][c] for k in range(8)) / 8 for c in range(4)]
    ci = max(range(4), key=lambda c: (shown[c], -c))  # the first of equal maxima
    if len(p) == 16 and ci in (0, 3):  # frontal or inverted: the image against its inversion
        inverted = [sum(p[k][c] for k in range(8, 16)) / 8 for c in range(4)]
        as_frontal = (shown[0] + inverted[3]) / 2
        as_inverted = (shown[3] + inverted[0]) / 2
        ci = 0 if as_frontal >= as_inverted else 3
    # The image's eight views and its inversion's eight vote alike.
    scores = orientation_scores(p, table)
    best = max(range(8), key=lambda o: (scores[o], -o))  # the first of equal maxima
    return ci, best


def threads():
    return os.cpu_count() or 1


def cold_child(weights, views_f32, composition):
    """A fresh process's first verdict: import torch, build, load, judge the first image."""
    import torch
    torch.set_num_threads(threads())
    net = build_net(weights)
    table = [[int(x) for x in line.split()] for line in open(composition)]
    with torch.inference_mode():
        probs = net(read_views(views_f32, images=1)).tolist()
    c, o = decide(probs, table)
    print(json.dumps({"class": c, "orientation": o}), flush=True)


# --- timing ---------------------------------------------------------------------------------

class TorchSide:
    """The network in PyTorch on DIR/views.f32, built once, timed in turns with radlab."""

    def __init__(self, weights, out_dir):
        import torch
        self.torch = torch
        torch.set_num_threads(threads())
        self.net = build_net(weights)
        self.views = read_views(os.path.join(out_dir, "views.f32"))
        self.images = self.views.shape[0] // VIEWS
        self.out_dir = out_dir

    def network_pass(self):
        """The softmax outputs of every view, 64 views (4 images) a call."""
        batch = 4 * VIEWS
        return self.torch.cat([self.net(self.views[i:i + batch])
                               for i in range(0, self.views.shape[0], batch)])

    def check(self):
        """Max abs difference from radlab's outputs (fails above TOLERANCE) and how many of
        radlab's verdicts decide() gives from PyTorch's outputs."""
        torch = self.torch
        with torch.inference_mode():
            probs = self.network_pass()
        with open(os.path.join(self.out_dir, "rust_probs.f32"), "rb") as f:
            rust = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
        rust = rust.reshape(-1, OUTPUTS)
        if rust.shape != probs.shape:
            raise SystemExit(f"rust_probs.f32 is {tuple(rust.shape)}, torch gave "
                             f"{tuple(probs.shape)}")
        diff = (rust - probs).abs().max().item()
        if not diff < TOLERANCE:
            raise SystemExit(f"PyTorch and radlab disagree: max abs difference of the softmax "
                             f"outputs {diff:.3g} (tolerance {TOLERANCE})")
        table = [[int(x) for x in line.split()]
                 for line in open(os.path.join(self.out_dir, "composition.txt"))]
        verdicts = [tuple(int(x) for x in line.split())
                    for line in open(os.path.join(self.out_dir, "rust_verdicts.txt"))]
        rows = probs.reshape(self.images, VIEWS, OUTPUTS).tolist()
        same = sum(decide(rows[i], table) == verdicts[i] for i in range(self.images))
        return diff, same

    def timed(self, runs, latency_images, n_threads):
        """Seconds of `runs` passes over all the views and of each one-image call over the
        first `latency_images` images in `runs` passes, each after an untimed pass (as
        triage_bench --network), on `n_threads` threads."""
        self.torch.set_num_threads(n_threads)
        with self.torch.inference_mode():
            self.network_pass()
            passes = []
            for _ in range(runs):
                t = time.perf_counter()
                self.network_pass()
                passes.append(time.perf_counter() - t)
            k = max(1, min(latency_images, self.images))
            one = [self.views[i * VIEWS:(i + 1) * VIEWS] for i in range(k)]
            for x in one:
                self.net(x)
            calls = []
            for _ in range(runs):
                for x in one:
                    t = time.perf_counter()
                    self.net(x)
                    calls.append(time.perf_counter() - t)
        return passes, calls


def first_line_seconds(cmd):
    """Seconds from starting `cmd` to its first line on stdout; checks it exits 0."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    elapsed = time.perf_counter() - t
    rest, err = p.communicate()
    if p.returncode != 0 or not line.strip():
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {err.strip()[-500:]}")
    return elapsed, json.loads(line)


def import_and_triage_rates(radlab, files, runs=3):
    """`radlab import --check decode` of `files` into a fresh catalog, and `radlab triage
    --json` of the same files, alternating, each a fresh process on all cores: median
    files/s of each, the import's last summary (files seen, imported, other encodings,
    copies, quarantined) and how many verdicts the triage printed."""
    scratch = tempfile.mkdtemp(prefix="radlab-bench-triage-")
    times = {"import": [], "triage": []}
    try:
        for run in range(runs + 1):  # the first run warms the page cache, untimed
            data = os.path.join(scratch, f"data{run}")
            t = time.perf_counter()
            r = subprocess.run([radlab, "import", "--no-skip-known", "--json", "--check",
                                "decode", "--data-dir", data] + files,
                               check=True, capture_output=True, text=True)
            if run:
                times["import"].append(time.perf_counter() - t)
            shutil.rmtree(data)
            t = time.perf_counter()
            tr = subprocess.run([radlab, "triage", "--json"] + files,
                                check=True, capture_output=True, text=True)
            if run:
                times["triage"].append(time.perf_counter() - t)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = json.loads(r.stdout)
    verdicts = len([line for line in tr.stdout.splitlines() if line.strip()])
    return ({k: len(files) / statistics.median(v) for k, v in times.items()},
            {k: summary.get(k, 0) for k in ("files_seen", "imported", "other_encodings",
                                            "already_present", "quarantined")},
            verdicts)


def find_example(given):
    if given:
        return given
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    path = os.path.join(target, "release", "examples", "triage_bench")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "radlab-triage",
                        "--example", "triage_bench"], cwd=ROOT, check=True)
    return path


def corpus_files(corpus):
    files = []
    for sub in ("dicom/cxr", "dicom/cxr_derived"):
        for d, _, names in sorted(os.walk(os.path.join(corpus, sub))):
            files += [os.path.join(d, n) for n in sorted(names)]
    for d, _, names in sorted(os.walk(os.path.join(corpus, "png", "cxr"))):
        files += [os.path.join(d, n) for n in sorted(names)
                  if n.lower().endswith((".png", ".jpg", ".jpeg"))]
    return files


def ratio(a, b):
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def median_ms(v):
    return statistics.median(v) * 1e3


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--cold-child":
        cold_child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("radlab", nargs="?", default=os.path.join(ROOT, "target/release/radlab"),
                    help='release radlab binary for `radlab import` ("-": skip it)')
    ap.add_argument("corpus", nargs="?",
                    default=os.environ.get("RADLAB_CORPUS", os.path.join(ROOT, "../shared/data")))
    ap.add_argument("out_md", nargs="?", default=os.path.join(ROOT, "bench/out/triage.md"))
    ap.add_argument("--weights", help="safetensors weights (default: the shipped ones, or a "
                    "seeded untrained network)")
    ap.add_argument("--runs", type=int, default=3, help="warm passes per turn (default 3)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="turns of radlab then PyTorch for the network-only times (default 3)")
    ap.add_argument("--cold-runs", type=int, default=7)
    ap.add_argument("--latency-images", type=int, default=64)
    ap.add_argument("--example", help="the triage_bench example binary")
    args = ap.parse_args()
    ensure_venv()
    load = os.getloadavg()[0]
    out_dir = os.path.join(ROOT, "bench", "out", "triage")
    os.makedirs(out_dir, exist_ok=True)
    example = find_example(args.example)

    weights = args.weights
    shipped = os.path.join(ROOT, "crates/radlab-triage/weights/triage.safetensors")
    if weights is None and os.path.exists(shipped):
        weights = shipped
    if weights is None:
        weights = os.path.join(out_dir, "untrained-seed1.safetensors")
        subprocess.run([example, "--make-weights", weights, "--seed", "1"], check=True)
        weights_said = ("a seeded untrained network (`Net::new(1)`; the trained weights "
                        "were not there yet, and the times do not depend on the values)")
    else:
        weights_said = f"`{os.path.relpath(os.path.abspath(weights), ROOT)}`"

    files = corpus_files(args.corpus)
    if not files:
        raise SystemExit(f"no image under {args.corpus}")
    listing = os.path.join(out_dir, "files-in.txt")
    with open(listing, "w") as f:
        f.write("".join(p + "\n" for p in files))

    # The left-right network: the shipped one, with the shipped triage weights (radlab's
    # own pipeline rows time the whole built-in model, as `radlab triage` runs it).
    laterality = os.path.join(ROOT, "crates/radlab-triage/weights/laterality.safetensors")
    whole = (os.path.abspath(weights) == os.path.abspath(shipped)
             and os.path.exists(laterality) and os.path.getsize(laterality) > 0)
    side_args = ["--laterality-weights", laterality] if whole else []

    # radlab: views, outputs and verdicts written; judge, end to end and decode timed.
    print(f"triage bench: {len(files)} files; radlab writes the views, judge and end to "
          f"end...", file=sys.stderr)
    r = subprocess.run([example, "--weights", weights, "--out", out_dir, "--runs",
                        str(args.runs), "--latency-images", str(args.latency_images),
                        "--files-from", listing] + side_args,
                       check=True, capture_output=True, text=True)
    rust = json.loads(r.stdout.strip().splitlines()[-1])
    loaded = [line.rstrip("\n") for line in open(os.path.join(out_dir, "files.txt"))]
    n = len(loaded)
    dicoms = sum(os.sep + "dicom" + os.sep in p for p in loaded)
    pngs = sum(p.lower().endswith(".png") for p in loaded)

    # The network alone, radlab then PyTorch, in turns (a shared machine's load moves).
    side = TorchSide(weights, out_dir)
    diff, same = side.check()
    # Each turn: all cores, then one thread each (RAYON_NUM_THREADS=1 for radlab,
    # torch.set_num_threads(1)), which a busy machine disturbs less.
    net = {"radlab": [], "torch": [], "radlab 1": [], "torch 1": []}
    one = {"radlab": [], "torch": []}
    for turn in range(args.rounds):
        print(f"triage bench: network only, turn {turn + 1} of {args.rounds}...",
              file=sys.stderr)
        for suffix, n_threads, k_one in (("", threads(), args.latency_images), (" 1", 1, 1)):
            env = dict(os.environ, RAYON_NUM_THREADS=str(n_threads))
            r = subprocess.run([example, "--weights", weights, "--network", out_dir,
                                "--runs", str(args.runs), "--latency-images", str(k_one)],
                               check=True, capture_output=True, text=True, env=env)
            t = json.loads(r.stdout.strip().splitlines()[-1])
            passes, calls = side.timed(args.runs, k_one, n_threads)
            net["radlab" + suffix] += t["network_s"]
            net["torch" + suffix] += passes
            if not suffix:
                one["radlab"] += t["network_latency_s"]
                one["torch"] += calls
    rate = {k: n / statistics.median(v) for k, v in net.items()}
    spread = {k: (n / max(v), n / min(v)) for k, v in net.items()}
    one = {k: median_ms(v) for k, v in one.items()}

    print("triage bench: cold starts...", file=sys.stderr)
    views_f32 = os.path.join(out_dir, "views.f32")
    composition = os.path.join(out_dir, "composition.txt")
    cold = {"radlab": [], "torch": [], "radlab_file": []}
    answers = set()
    for _ in range(args.cold_runs):
        s, v = first_line_seconds([example, "--weights", weights, "--cold-views", out_dir])
        cold["radlab"].append(s)
        answers.add((v["class"], v["orientation"]))
        s, v = first_line_seconds([sys.executable, os.path.abspath(__file__), "--cold-child",
                                   weights, views_f32, composition])
        cold["torch"].append(s)
        answers.add((v["class"], v["orientation"]))
        s, _ = first_line_seconds([example, "--weights", weights, "--cold", loaded[0]]
                                  + side_args)
        cold["radlab_file"].append(s)
    if len(answers) != 1:
        print(f"triage bench: the cold starts' first verdicts differ: {sorted(answers)}",
              file=sys.stderr)
    cold = {k: median_ms(v) for k, v in cold.items()}

    imported = None
    if args.radlab != "-" and os.path.exists(args.radlab):
        print("triage bench: radlab import and radlab triage...", file=sys.stderr)
        cli, import_summary, verdicts = import_and_triage_rates(args.radlab, loaded)
        imported, triaged = cli["import"], cli["triage"]
        if verdicts != n:
            raise SystemExit(f"radlab triage printed {verdicts} verdicts for {n} files")

    judge = n / statistics.median(rust["judge_s"])
    end_to_end = n / statistics.median(rust["end_to_end_s"])
    decode = n / statistics.median(rust["decode_s"])
    judge_one = median_ms(rust["judge_latency_s"])
    first_size = os.path.getsize(loaded[0]) / 1024
    first_kind = "DICOM" if os.sep + "dicom" + os.sep in loaded[0] else "picture"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    import torch
    ratios = {
        "network only": rate["radlab"] / rate["torch"],
        "one thread each": rate["radlab 1"] / rate["torch 1"],
        "one image": one["torch"] / one["radlab"],
        "cold": cold["torch"] / cold["radlab"],
    }
    k = min(args.latency_images, n)
    warm_runs = args.rounds * args.runs
    lines = [
        "## Triage network: radlab against PyTorch",
        "",
        f"`bench/triage.py`: the triage network (4 blocks of 3x3 convolution + ReLU + 2x2 max "
        f"pooling, 16-32-64-64 channels, the last 4 x 4 map flattened, linear to 4 class + 8 "
        f"orientation "
        f"outputs, softmax) on {n} images: every DICOM of the corpus's dicom/cxr and "
        f"dicom/cxr_derived ({dicoms}) and every PNG ({pngs}) and JPEG ({n - dicoms - pngs}) "
        f"under png/cxr"
        + (f" ({rust['skipped']} file(s) that do not load left out)" if rust["skipped"] else "")
        + f"; network only, each image is looked at in its 16 views (8 orientations, each "
        f"also inverted; 64 x 64 float32), so one image is 16 network inputs; `model::judge` "
        f"and `radlab triage` look at the inverted 8 only where the first 8 do not settle "
        f"the image (`model::settled`: {rust['unsettled']} of {n} images here, so "
        f"{(8 * n + 8 * rust['unsettled']) / n:.1f} inputs an image). radlab: its inference path "
        f"on the CPU, release build of `crates/radlab-triage/examples/triage_bench.rs`, which "
        f"calls `Classifier::outputs` and `model::judge`. PyTorch {torch.__version__} on Python "
        f"{platform.python_version()}: the same layers and weights, eager mode, float32, "
        f"`torch.inference_mode()`, {threads()} threads, run on the very bytes "
        f"of radlab's views. Both use all {threads()} cores of this machine ({cpu}), 64 views "
        f"(4 images) a call as `judge` batches them. Weights: {weights_said}.",
        "",
        f"Network only: {args.rounds} turns of radlab then PyTorch, on all cores then on one "
        f"thread each (`RAYON_NUM_THREADS=1`, `torch.set_num_threads(1)`), {args.runs} passes "
        f"over all images each after an untimed one: medians of {warm_runs} passes (range "
        f"in brackets); one image: "
        f"its 16 views in one call, median over the first {k} images x {warm_runs} passes. "
        f"Cold: a fresh process from its start to its first verdict printed (timed from "
        f"outside), median of {args.cold_runs}, the sides alternating; both start from the "
        f"first image's prepared views. radlab's own pipeline (from decoded pixels, and from "
        f"the file): medians of {args.runs} passes, run before the turns (one image: the "
        f"first {k} images). Same numbers: the softmax outputs of all "
        f"{n * VIEWS} views agree within {diff:.1e} (max abs difference; the script fails "
        f"above {TOLERANCE:g}); through model.rs's decision rule PyTorch's outputs give "
        f"radlab's verdict for {same} of {n} images. "
        + (f"radlab's own pipeline rows (`model::judge`, cold from the file, end to end, and "
           f"`radlab triage`) run the whole built-in model: the left-right network (5 blocks, "
           f"128 x 128) then looks again at each image called frontal, upright and mirrored "
           f"(2 inputs of about 1.4 views' work each); the PyTorch copy and the network-only "
           f"rows are of the triage network alone. " if whole else "")
        + f"The machine was shared with other work "
        f"(load average {load:.1f} at the start), so the passes vary.",
        "",
        "| | radlab | PyTorch | radlab / PyTorch (speed) |",
        "|---|---:|---:|---:|",
        f"| warm, network only (forward + softmax), images/s | {rate['radlab']:.1f} "
        f"({spread['radlab'][0]:.1f}-{spread['radlab'][1]:.1f}) | {rate['torch']:.1f} "
        f"({spread['torch'][0]:.1f}-{spread['torch'][1]:.1f}) | "
        f"{ratio(rate['radlab'], rate['torch'])} |",
        f"| warm, network only, one thread each, images/s | {rate['radlab 1']:.1f} "
        f"({spread['radlab 1'][0]:.1f}-{spread['radlab 1'][1]:.1f}) | {rate['torch 1']:.1f} "
        f"({spread['torch 1'][0]:.1f}-{spread['torch 1'][1]:.1f}) | "
        f"{ratio(rate['radlab 1'], rate['torch 1'])} |",
        f"| warm, one image (16 views, one call) | {one['radlab']:.1f} ms | "
        f"{one['torch']:.1f} ms | {ratio(one['torch'], one['radlab'])} |",
        f"| cold: fresh process to the first verdict | {cold['radlab']:.0f} ms | "
        f"{cold['torch']:.0f} ms (`import torch`, build, load the weights, judge) | "
        f"{ratio(cold['torch'], cold['radlab'])} |",
        f"| radlab `model::judge` from decoded pixels (scale to fit, 8 views, the inversion's "
        f"8 where unsettled, network, decide"
        + (", the left-right network on the frontal ones" if whole else "")
        + f"), images/s | {judge:.1f} | - | - |",
        f"| radlab `model::judge` of one decoded image | {judge_one:.1f} ms | - | - |",
        f"| radlab cold: fresh process, decode the first file ({first_kind}, "
        f"{first_size:.0f} KiB) and judge it | {cold['radlab_file']:.0f} ms | - | - |",
        f"| radlab end to end: decode (`load_grey`) then `judge`, one file after another, "
        f"images/s | {end_to_end:.1f} | - | - |",
        f"| (for scale) decode alone (`load_grey`), one file after another, images/s | "
        f"{decode:.1f} | - | - |",
    ]
    if imported is not None:
        lines.append(f"| `radlab triage --json` of the same files (the command: a fresh process, "
                     f"the built-in network, files decoded and judged on all cores), median "
                     f"of 3, files/s | {triaged:.1f} | - | - |")
        lines.append(f"| `radlab import --check decode --no-skip-known` of the same "
                     f"files into a fresh catalog, all cores, median of 3, alternating with "
                     f"the triage runs ({import_summary['imported']} imported, "
                     f"{import_summary['other_encodings'] + import_summary['already_present']} "
                     f"other encodings or copies of those, "
                     f"{import_summary['quarantined']} quarantined), files/s | "
                     f"{imported:.1f} | - | - |")
    lines.append("")
    met = "met" if min(ratios.values()) >= 1 else "not met"
    said = ", ".join(f"{k} {ratio(v, 1)}" for k, v in ratios.items())
    best = {k: n / min(v) for k, v in net.items()}
    lines.append(f"Goal: radlab's network at least as fast as PyTorch's on the CPU: {met} in "
                 f"this run by the medians ({said}; above 1x radlab is faster). Fastest "
                 f"passes, all cores: radlab {best['radlab']:.1f}, PyTorch "
                 f"{best['torch']:.1f} images/s ({ratio(best['radlab'], best['torch'])}); "
                 f"one thread each: radlab {best['radlab 1']:.1f}, PyTorch "
                 f"{best['torch 1']:.1f} ({ratio(best['radlab 1'], best['torch 1'])})."
                 + (" PyTorch's fastest pass beats radlab's: its passes vary the most on a "
                    "busy machine, so the medians flatter radlab; a quiet machine may well "
                    "put PyTorch ahead." if met == "met" and (best["torch"] > best["radlab"]
                    or best["torch 1"] > best["radlab 1"]) else "")
                 + (" PyTorch was faster on one thread than on all cores in this run: its "
                    "OpenMP threads wait on each other when other work holds a core, so the "
                    "one-thread row is the fairer comparison on a shared machine."
                    if rate["torch 1"] > rate["torch"] else ""))
    if imported is not None:
        faster = "met" if triaged >= imported else "not met"
        lines.append(f"Goal: triage faster than the import it rides on, same files, both "
                     f"commands on all cores: {faster} in this run ({triaged:.1f} files/s "
                     f"judged by `radlab triage` against {imported:.1f} files/s imported by "
                     f"`radlab import --check decode`, {ratio(triaged, imported)}).")
    else:
        lines.append(f"Triage end to end against the import it rides on: {end_to_end:.1f} "
                     f"images/s judged (one file after another in the example); `radlab "
                     f"import` and `radlab triage` were not run here (no release binary "
                     f"given).")
    section = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out_md)), exist_ok=True)
    with open(args.out_md, "w") as f:
        f.write(section)
    bench_md = os.path.join(ROOT, "BENCHMARKS.md")
    with open(bench_md) as f:
        text = f.read()
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(bench_md, "w") as f:
        f.write(text)
    print(section)
    print(json.dumps({"radlab": rust, "network_s": net, "one_image_ms": one, "cold_ms": cold,
                      "max_abs_diff": diff, "verdicts_same": same,
                      "import_files_per_s": imported,
                      "triage_files_per_s": triaged if imported is not None else None}), file=sys.stderr)


if __name__ == "__main__":
    main()
