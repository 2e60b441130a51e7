#!/usr/bin/env python3
"""What radlab, pydicom `deid` and Kitware `dicom-anonymizer` leave behind or break, measured
by running each on the same corpus (not from their documentation).

usage: bench/deid_compare.py [--radlab BIN] [--corpus DIR] [--out docs/deid-comparison.md]
                             [--json bench/out/deid_compare.json]

Defaults: target/release/radlab (`cargo build --release --bin radlab` first), the corpus in
../shared/data (or RADLAB_CORPUS), docs/deid-comparison.md. The Python tools run from
.venv-deid (made from bench/deid-requirements.txt when missing); dciodvfy (dicom3tools,
`scripts/setup-system dicom3tools`) is used when installed.

Each tool gets a copy of every DICOM file under CORPUS/dicom, with its default configuration:
  - radlab: `radlab deid FILE OUT --key-file K` (profile annex-e-basic), one process per file
    (copies of one object in several encodings share their SOP Instance UID, and radlab names
    its output by the new UIDs; the key makes every run map a UID the same way);
  - deid: its default recipe through `get_identifiers` + `replace_identifiers(save=True)`,
    what `deid identifiers --action all` does, per file in one Python process;
  - dicom-anonymizer: `anonymize(FILE, OUT, {}, True)`, what its CLI does with no options
    (default rules, private tags deleted), per file in one Python process.
A file that raises, times out, or writes nothing counts as failed. Every input/output pair is
then compared: the report names elements and counts, never values.
"""
import argparse
import collections
import datetime
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# bench/deid.py would shadow the `deid` package: never import from this folder.
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
VENV = os.path.join(ROOT, ".venv-deid")
TOOLS = ["radlab", "deid", "dicom-anonymizer"]
PER_FILE_TIMEOUT = 120


def ensure_venv():
    """Re-run this script under .venv-deid (making it first) unless the tools import here."""
    try:
        import deid  # noqa: F401
        import dicomanonymizer  # noqa: F401
        import pydicom  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "-r",
                        os.path.join(ROOT, "bench", "deid-requirements.txt")], check=True)
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        sys.exit("the Python tools do not import in .venv-deid")
    os.execv(py, [py] + sys.argv)


# --------------------------------------------------------------------------------------------
# Running the Python tools (child process: `--run-python-tool TOOL LIST OUTROOT RESULT`)


class Timeout(Exception):
    pass


def run_python_tool(tool, list_file, out_root, result_file):
    import logging
    logging.disable(logging.CRITICAL)
    files = [line.rstrip("\n") for line in open(list_file)]
    if tool == "deid":
        from deid.dicom import get_identifiers, replace_identifiers
        from deid.logger import bot
        bot.level = 0  # quiet

        def one(src, out_dir):
            ids = get_identifiers([src])
            replace_identifiers(dicom_files=[src], ids=ids, save=True, overwrite=True,
                                output_folder=out_dir)
    else:
        from dicomanonymizer import anonymize

        def one(src, out_dir):
            anonymize(src, os.path.join(out_dir, os.path.basename(src)), {}, True)

    def alarm(*_):
        raise Timeout(f"no result after {PER_FILE_TIMEOUT} s")

    signal.signal(signal.SIGALRM, alarm)
    results = {}
    for i, src in enumerate(files):
        out_dir = os.path.join(out_root, f"{i:03}")
        os.makedirs(out_dir)
        t = time.perf_counter()
        err = None
        signal.alarm(PER_FILE_TIMEOUT)
        try:
            one(src, out_dir)
        except BaseException as e:  # noqa: BLE001 - a crash is a result here
            err = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        finally:
            signal.alarm(0)
        outs = sorted(glob.glob(os.path.join(out_dir, "**", "*"), recursive=True))
        outs = [o for o in outs if os.path.isfile(o)]
        results[src] = {"error": err, "outputs": outs, "seconds": time.perf_counter() - t}
    with open(result_file, "w") as f:
        json.dump(results, f)


def run_radlab(radlab, files, out_root, key_file):
    results = {}
    for i, src in enumerate(files):
        out_dir = os.path.join(out_root, f"{i:03}")
        t = time.perf_counter()
        err = review = None
        try:
            p = subprocess.run([radlab, "deid", src, out_dir, "--key-file", key_file, "--json"],
                               capture_output=True, text=True, timeout=PER_FILE_TIMEOUT)
            outcomes = []
            for line in p.stdout.splitlines():
                try:
                    outcomes.append(json.loads(line))
                except ValueError:
                    continue
            review = next((o["review"] for o in outcomes if o.get("review")), None)
            if p.returncode != 0:
                err = f"exit {p.returncode}"
                for o in outcomes:
                    if o.get("error"):
                        err += ": " + o["error"][:160]
                        kinds = sorted({f"{x.get('kind')} at {x.get('path')}"
                                        for x in o.get("findings", [])})
                        if kinds:
                            err += " [" + "; ".join(kinds)[:300] + "]"
                if p.stderr.strip():
                    err += " / " + p.stderr.strip().splitlines()[-1][:160]
        except subprocess.TimeoutExpired:
            err = f"no result after {PER_FILE_TIMEOUT} s"
        outs = sorted(glob.glob(os.path.join(out_dir, "**", "*.dcm"), recursive=True))
        results[src] = {"error": err, "outputs": outs, "seconds": time.perf_counter() - t,
                         "review": review}
    return results


# --------------------------------------------------------------------------------------------
# Reading and walking data sets

TEXT_VRS = {"AE", "AS", "CS", "DA", "DT", "TM", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR",
            "UI"}
BIN_VRS = {"OB", "UN", "OW"}
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
WELL_KNOWN_UID = "1.2.840.10008."
DA_RE = re.compile(r"^\d{8}$")
DT_RE = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$")


def read(path):
    import pydicom
    return pydicom.dcmread(path, force=True)


def walk(ds, prefix=()):
    """(path, element) for every element at every depth; path = tags and item numbers."""
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception:  # noqa: BLE001 - an element pydicom cannot convert
            continue
        path = prefix + (int(tag),)
        yield path, elem
        if elem.VR == "SQ" and elem.value is not None:
            for i, item in enumerate(elem.value):
                yield from walk(item, path + (i,))


def walk_all(ds):
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from walk(meta, ("meta",))
    yield from walk(ds)


def components(elem):
    """The string components of a text element (PN split into its groups too)."""
    v = elem.value
    if v is None:
        return []
    vals = list(v) if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue" else [v]
    out = []
    for x in vals:
        if isinstance(x, bytes):
            x = x.decode("latin-1", "replace")
        s = str(x).strip().rstrip("\x00").strip()
        if s:
            out.append(s)
            if elem.VR == "PN":
                for group in s.split("="):
                    out.append(group.strip())
                    out.extend(p.strip() for p in group.split("^"))
    return [s for s in dict.fromkeys(out) if s]


def tag_name(tag):
    from pydicom.datadict import keyword_for_tag
    if tag == "meta":
        return "meta"
    if isinstance(tag, int) and tag >> 16 & 1:
        return f"private ({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def describe(path):
    """'ReferencedImageSequence>ReferencedSOPInstanceUID' (item numbers dropped)."""
    parts = []
    for p in path:
        if p == "meta":
            parts.append("meta")
        elif isinstance(p, int) and p <= 0xFFFF and parts:
            continue  # an item number (tags are > 0xFFFF except group 0000)
        else:
            parts.append(tag_name(p))
    return ">".join(parts)


# --------------------------------------------------------------------------------------------
# Annex E (PS3.15 Table E.1-1, machine-readable, from the shared standards folder)


def load_annex_e(corpus):
    candidates = [os.path.join(os.path.dirname(os.path.abspath(corpus)), "standards",
                               "ps3.15-annex-e-confidentiality-profile.json")]
    for c in candidates:
        if os.path.exists(c):
            rows = json.load(open(c))
            break
    else:
        sys.exit("PS3.15 Annex E table not found next to the corpus (standards/)")
    exact, patterns = {}, []
    for r in rows:
        t = r["tag"].strip("()").upper()
        if not re.fullmatch(r"[0-9A-FX]{4},[0-9A-FX]{4}", t):
            continue  # "(gggg,eeee) where gggg is odd": private elements, counted apart
        g, e = t.split(",")
        if "X" in t:
            rx = re.compile("^" + (g + e).replace("X", "[0-9A-F]") + "$")
            patterns.append((rx, r))
        else:
            exact[int(g + e, 16)] = r
    return exact, patterns


class AnnexE:
    def __init__(self, corpus):
        self.exact, self.patterns = load_annex_e(corpus)

    def entry(self, tag):
        if not isinstance(tag, int):
            return None
        if tag in self.exact:
            return self.exact[tag]
        hexed = f"{tag:08X}"
        for rx, r in self.patterns:
            if rx.match(hexed):
                return r
        return None

    def identifying(self, tag):
        """Annex E removes or replaces it (every Basic Profile action is one of D/Z/X/U)."""
        r = self.entry(tag)
        return r is not None and r["basicProfile"] != "K"


# --------------------------------------------------------------------------------------------
# The checks


def identifying_tokens(ds, annex):
    """{token: (kind, source element name)} for values of elements Annex E removes or
    replaces, at any depth (file meta included)."""
    tokens = {}
    for path, elem in walk_all(ds):
        tag = path[-1]
        if elem.VR not in TEXT_VRS or not annex.identifying(tag):
            continue
        kind = ("uid" if elem.VR == "UI" else
                "date" if elem.VR in ("DA", "DT", "TM") else "text")
        for s in components(elem):
            if kind == "uid" and s.startswith(WELL_KNOWN_UID):
                continue
            if len(s.encode("utf-8")) < 4 or s.strip("0. ^-") == "":
                continue
            tokens.setdefault(s, (kind, tag_name(tag)))
    return tokens


def find_leaks(inp, out, annex):
    """[(kind, source element, output element path)] for identifying input values found in
    the output. A hit in a public element that Annex E keeps and that held the same text in
    the input (same path) is a coincidence of kept data, not a leak."""
    tokens = identifying_tokens(inp, annex)
    if not tokens:
        return []
    in_values = {}
    for path, elem in walk_all(inp):
        if elem.VR in TEXT_VRS:
            in_values[path] = " ".join(components(elem))
    leaks = set()
    for path, elem in walk_all(out):
        tag = path[-1]
        if path[0] == "meta" and tag in (0x00020012, 0x00020013):
            continue  # the writing software's own Implementation Class UID / Version Name
        private = isinstance(tag, int) and (tag >> 16) & 1
        if elem.VR in TEXT_VRS:
            comps = components(elem)
            texts = comps
        elif elem.VR in BIN_VRS and tag != 0x7FE00010 and elem.value is not None \
                and len(elem.value) < 1 << 20:
            raw = elem.value if isinstance(elem.value, bytes) else b""
            texts = [raw.decode("latin-1")]
            comps = []
        else:
            continue
        for tok, (kind, src) in tokens.items():
            hit = tok in comps
            if not hit and len(tok) >= 6:
                if elem.VR == "UI" and kind != "uid":
                    hit = False  # digits inside a (new) UID are not a leak of an ID or date
                else:
                    t = tok if elem.VR not in BIN_VRS else tok.encode("utf-8").decode("latin-1")
                    hit = any(t in x for x in texts)
            if not hit:
                continue
            if (not private and path[0] != "meta" and not annex.identifying(tag)
                    and tok in in_values.get(path, "")):
                continue  # kept, non-identifying element that held this text in the input
            leaks.add((kind, src, describe(path), tok))
    return sorted(leaks)


def uid_values(ds):
    for path, elem in walk_all(ds):
        if elem.VR == "UI":
            for s in components(elem) or []:
                yield path, s


def bad_uid(s):
    return len(s) > 64 or not UID_RE.match(s)


def bad_date(vr, s):
    if vr == "DA":
        if not DA_RE.match(s):
            return True
        try:
            datetime.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
        except ValueError:
            return True
        return "early" if int(s[:4]) < 1850 else False
    return not DT_RE.match(s)


def dciodvfy_errors(path):
    """dciodvfy's Error lines, with values masked (as crates/radlab-deid/tests/dciodvfy.rs)."""
    try:
        p = subprocess.run(["dciodvfy", path], capture_output=True, text=True, errors="replace",
                           timeout=120)
    except subprocess.TimeoutExpired:
        return collections.Counter(["dciodvfy timed out"])
    out = collections.Counter()
    for line in (p.stderr + p.stdout).splitlines():
        if not line.startswith("Error"):
            continue
        line = re.sub(r"<[^>]*>", "<_>", line)
        line = " ".join("UID" if re.fullmatch(r"[0-9.]*\.[0-9.]*", w) else w
                        for w in line.split())
        out[line] += 1
    return out


def pixel_bytes(ds):
    try:
        return ds.get((0x7FE0, 0x0010)).value if (0x7FE0, 0x0010) in ds else None
    except Exception:  # noqa: BLE001
        return None


def items(buf):
    """The fragments of encapsulated Pixel Data, read strictly (every item header where the
    previous item ends, nothing left over), or None."""
    buf, out, pos = bytes(buf), [], 0
    while pos < len(buf):
        if pos + 8 > len(buf) or buf[pos:pos + 4] != b"\xfe\xff\x00\xe0":
            return None
        n = int.from_bytes(buf[pos + 4:pos + 8], "little")
        out.append(buf[pos + 8:pos + 8 + n])
        pos += 8 + n
    return out if pos == len(buf) else None


def compare_pixels(a, b, encapsulated):
    """'same', 'padded' (odd-length data given its trailing pad byte, as PS3.5 requires),
    'broken' (encapsulated data whose items no longer parse) or 'changed'."""
    if a == b:
        return "same"
    if not encapsulated:
        return "padded" if len(a) % 2 == 1 and b == a + b"\x00" else "changed"
    fa, fb = items(a), items(b)
    if fb is None:
        return "broken"
    if fa is not None and len(fa) == len(fb) and all(
            x == y or (len(x) % 2 == 1 and y in (x + b"\x00", x + b"\xff"))
            for x, y in zip(fa, fb)):
        return "padded"
    return "changed"


def dcmdump_ok(path):
    """dcmtk reads the whole file (None when dcmdump is not installed)."""
    if not shutil.which("dcmdump"):
        return None
    p = subprocess.run(["dcmdump", "-q", path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
    return p.returncode == 0


def top(ds, keyword):
    try:
        v = ds.get(keyword)
        return str(v).strip() if v not in (None, "") else None
    except Exception:  # noqa: BLE001
        return None


def meta_value(ds, keyword):
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return None
    return top(meta, keyword)


def analyse(tool, results, rel, annex, have_dciodvfy):
    """Per-file findings and cross-file checks for one tool."""
    per_file = {}
    uid_map = collections.defaultdict(set)      # input UID -> output UIDs (aligned paths)
    uid_nested = set()                           # input UIDs seen inside a sequence
    uid_where = collections.defaultdict(set)     # input UID -> "file: element path"
    study_map = collections.defaultdict(set)
    series_map = collections.defaultdict(set)
    written = collections.defaultdict(set)      # (element, value the tool wrote) -> files
    for src, res in results.items():
        name = rel[src]
        f = {"error": res["error"], "outputs": len(res["outputs"])}
        per_file[name] = f
        if res.get("review") and not res["outputs"]:
            # radlab: suspected burned-in text, listed for review instead of written.
            f["review"] = res["review"][:110]
            continue
        if res["error"] or not res["outputs"]:
            f["failed"] = True
            if not res["error"]:
                f["error"] = "no output written"
            continue
        out_path = res["outputs"][0]
        try:
            inp = read(src)
            out = read(out_path)
            list(walk_all(out))
        except Exception as e:  # noqa: BLE001
            f["unreadable"] = f"{type(e).__name__}: {str(e)[:120]}"
            continue
        f["leak_hits"] = find_leaks(inp, out, annex)
        in_text = {p: set(components(e)) for p, e in walk_all(inp) if e.VR in TEXT_VRS}
        for p, e in walk_all(out):
            if e.VR in TEXT_VRS:
                for c in set(components(e)) - in_text.get(p, set()):
                    written[(describe(p), c)].add(name)
        priv = [describe(p) for p, _ in walk_all(out)
                if isinstance(p[-1], int) and (p[-1] >> 16) & 1]
        f["private"] = len(priv)
        f["identity_removed"] = top(out, "PatientIdentityRemoved")
        f["method"] = bool(top(out, "DeidentificationMethod")) or \
            "DeidentificationMethodCodeSequence" in out
        in_uid_set = {(p, s) for p, s in uid_values(inp)}
        f["bad_uids"] = sorted({describe(p) for p, s in uid_values(out)
                                if bad_uid(s) and (p, s) not in in_uid_set})
        f["bad_uids_kept"] = sorted({describe(p) for p, s in uid_values(out)
                                     if bad_uid(s) and (p, s) in in_uid_set})
        missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
                   if top(inp, k) and not top(out, k)]
        f["missing_uids"] = missing
        sop, msop = top(out, "SOPInstanceUID"), meta_value(out, "MediaStorageSOPInstanceUID")
        f["meta_mismatch"] = None if sop and msop and sop == msop else \
            ("no file meta" if getattr(out, "file_meta", None) is None or
             "TransferSyntaxUID" not in out.file_meta else
             "MediaStorageSOPInstanceUID missing" if not msop else
             "SOPInstanceUID missing" if not sop else "differ")
        isop = top(inp, "SOPInstanceUID")
        f["meta_mismatch_in_input"] = bool(
            getattr(inp, "file_meta", None) is not None and
            meta_value(inp, "MediaStorageSOPInstanceUID") and
            meta_value(inp, "MediaStorageSOPInstanceUID") != isop)
        for k, m in (("StudyInstanceUID", study_map), ("SeriesInstanceUID", series_map)):
            if top(inp, k):
                m[top(inp, k)].add(top(out, k))
        in_uids = {}
        for p, s in uid_values(inp):
            in_uids.setdefault(p, []).append(s)
        for p, s in uid_values(out):
            ins = in_uids.get(p)
            if not ins:
                continue
            outs = [x for q, x in uid_values(out) if q == p] if len(ins) > 1 else [s]
            if p[0] == "meta":
                continue  # file meta: its own row (and the writer's Implementation Class UID)
            for a, b in zip(ins, outs):
                if a.startswith(WELL_KNOWN_UID):
                    continue
                uid_map[a].add(b)
                uid_where[a].add(f"{name}: {describe(p)}")
                if len(p) > 1 and p[0] != "meta":
                    uid_nested.add(a)
        # dates written: invalid DA / DT values that the input did not hold at that path
        in_dates = {p: e.value for p, e in walk_all(inp) if e.VR in ("DA", "DT")}
        bad_dates = []
        for p, e in walk_all(out):
            if e.VR not in ("DA", "DT"):
                continue
            for s in components(e):
                bad = bad_date(e.VR, s)
                if bad and e.value != in_dates.get(p):
                    bad_dates.append(describe(p) + (" (year < 1850)" if bad == "early" else ""))
        f["bad_dates"] = sorted(set(bad_dates))
        a, b = pixel_bytes(inp), pixel_bytes(out)
        if a is None and b is None:
            f["pixels"] = None
        elif a == b:
            f["pixels"] = "same"
        elif b is None:
            f["pixels"] = "removed"
        else:
            ts = meta_value(inp, "TransferSyntaxUID")
            try:
                from pydicom.uid import UID
                enc = bool(ts) and UID(ts).is_compressed
            except Exception:  # noqa: BLE001
                enc = False
            f["pixels"] = compare_pixels(a, b, enc)
            if f["pixels"] == "changed" and len(a) == len(b) and len(a) % 2 == 0 and \
                    a[0::2] == b[1::2] and a[1::2] == b[0::2]:
                f["pixels"] = "byte order swapped"
        ok_in, ok_out = dcmdump_ok(src), dcmdump_ok(out_path)
        f["dcmtk_rejects"] = None if ok_in is None else bool(ok_in and not ok_out)
        if have_dciodvfy:
            before, after = dciodvfy_errors(src), dciodvfy_errors(out_path)
            new = after - before
            f["new_dciodvfy"] = sorted(new.elements())
    # A value the tool itself writes into 3 or more files (a placeholder such as a dummy
    # date) is no leak when an input happens to hold the same value.
    constants = {v for (_, v), names in written.items() if len(names) >= 3}
    for f in per_file.values():
        hits = f.pop("leak_hits", None)
        if hits is None:
            continue
        f["leaks"] = sorted({h[:3] for h in hits if h[3] not in constants})
        f["placeholder_hits"] = sorted({h[:3] for h in hits if h[3] in constants})
    # cross-file: UID consistency, grouping
    inconsistent = {u: len(v) for u, v in uid_map.items() if len(v) > 1}
    reverse = collections.defaultdict(set)
    for u, v in uid_map.items():
        for x in v:
            if x != u:
                reverse[x].add(u)
    merged = {x: len(v) for x, v in reverse.items() if len(v) > 1}
    cross = {
        "uid_inconsistent": len(inconsistent),
        "uid_inconsistent_nested": len([u for u in inconsistent if u in uid_nested]),
        "uid_merged": len(merged),
        "nested_uids": len(uid_nested),
        "uid_inconsistent_where": [sorted(uid_where[u]) for u in inconsistent],
    }
    for label, m in (("study", study_map), ("series", series_map)):
        multi = m
        split = [k for k, v in multi.items() if len(v) > 1 or None in v]
        rev = collections.defaultdict(set)
        for k, v in multi.items():
            for x in v:
                if x:
                    rev[x].add(k)
        cross[f"{label}_total"] = len(multi)
        cross[f"{label}_split"] = len(split)
        cross[f"{label}_merged"] = len([x for x, v in rev.items() if len(v) > 1])
        cross[f"{label}_lost"] = len([k for k, v in multi.items() if None in v])
    return per_file, cross


# --------------------------------------------------------------------------------------------
# Report


def count_note(counter, limit=6):
    items = counter.most_common()
    text = "; ".join(f"{k} in {n}" for k, n in items[:limit])
    if len(items) > limit:
        text += f"; +{len(items) - limit} more"
    return text


def summarise(per_file, cross, n_valid, n_invalid, invalid_names):
    """One cell per check: 'count (notes)'."""
    done = {k: v for k, v in per_file.items() if "leaks" in v}
    cells = {}
    failed_valid = [k for k, v in per_file.items() if v.get("failed") and k not in invalid_names]
    failed_invalid = [k for k, v in per_file.items() if v.get("failed") and k in invalid_names]
    cells["failed"] = (f"{len(failed_valid)} / {n_valid}",
                       "; ".join(f"`{os.path.basename(k)}`: {per_file[k]['error'][:110]}"
                                 for k in failed_valid[:5]) +
                       (f"; +{len(failed_valid) - 5} more" if len(failed_valid) > 5 else ""))
    cells["failed_invalid"] = (f"{len(failed_invalid)} / {n_invalid}",
                               "wrote output for: " + ", ".join(
                                   f"`{os.path.basename(k)}`" for k in invalid_names
                                   if k not in failed_invalid) if len(failed_invalid) < n_invalid
                               else "")
    review = [k for k, v in per_file.items() if v.get("review")]
    cells["review"] = (f"{len(review)}",
                       "; ".join(f"`{os.path.basename(k)}`: {per_file[k]['review']}"
                                 for k in review[:3]))
    unread = [k for k, v in per_file.items() if v.get("unreadable")]
    cells["unreadable"] = (f"{len(unread)}", ", ".join(f"`{os.path.basename(k)}`"
                                                       for k in unread))
    rej = [k for k, v in per_file.items() if v.get("dcmtk_rejects")]
    have = any(v.get("dcmtk_rejects") is not None for v in per_file.values())
    cells["dcmtk"] = (f"{len(rej)}" if have else "-",
                      ", ".join(f"`{os.path.basename(k)}`" for k in rej) if have
                      else "dcmdump not installed")
    n = len(done)
    cells["n"] = n
    for kind, key in (("text", "leak_text"), ("date", "leak_date"), ("uid", "leak_uid")):
        files = collections.Counter()
        where = collections.Counter()
        for k, v in done.items():
            srcs = {src for kd, src, _ in v["leaks"] if kd == kind}
            for s in srcs:
                files[s] += 1
            for kd, src, p in v["leaks"]:
                if kd == kind and p.split(">")[-1] != src:
                    where[f"{src} found in {p}"] += 1
        nfiles = len([1 for v in done.values() if any(kd == kind for kd, _, _ in v["leaks"])])
        note = count_note(files)
        ph = len([1 for v in done.values()
                  if any(kd == kind for kd, _, _ in v.get("placeholder_hits", []))])
        if ph:
            note += (f"{'; ' if note else ''}not counted: in {ph} the input held a "
                     f"placeholder value the tool itself writes")
        if where:
            note += " — moved/copied: " + count_note(where, 3)
        cells[key] = (f"{nfiles} / {n}", note)
    priv_files = [k for k, v in done.items() if v["private"]]
    cells["private"] = (f"{len(priv_files)} / {n}",
                        f"{sum(done[k]['private'] for k in priv_files)} private elements"
                        if priv_files else "")
    no_pir = [k for k, v in done.items() if (v["identity_removed"] or "").upper() != "YES"]
    cells["pir"] = (f"{len(no_pir)} / {n}", "")
    no_m = [k for k, v in done.items() if not v["method"]]
    cells["method"] = (f"{len(no_m)} / {n}", "")
    bad = collections.Counter(p for v in done.values() for p in v["bad_uids"])
    kept = [k for k, v in done.items() if v["bad_uids_kept"]]
    cells["bad_uids"] = (f"{len([1 for v in done.values() if v['bad_uids']])} / {n}",
                         count_note(bad) + (f"{'; ' if bad else ''}invalid input UID kept as is "
                                            f"in {len(kept)}" if kept else ""))
    miss = collections.Counter(p for v in done.values() for p in v["missing_uids"])
    cells["missing_uids"] = (f"{len([1 for v in done.values() if v['missing_uids']])} / {n}",
                             count_note(miss))
    cells["grouping"] = (
        f"{cross['study_split']} / {cross['study_total']} studies, "
        f"{cross['series_split']} / {cross['series_total']} series",
        (f"merged: {cross['study_merged']} studies, {cross['series_merged']} series; "
         if cross['study_merged'] or cross['series_merged'] else "") +
        (f"UID missing in output: {cross['study_lost']} studies, {cross['series_lost']} series"
         if cross['study_lost'] or cross['series_lost'] else ""))
    notes = []
    if cross["nested_uids"] == 0:
        notes.append("no UID left inside sequences to compare")
    if cross["uid_inconsistent"]:
        notes.append(f"{cross['uid_inconsistent']} input UIDs got more than one new value in "
                     f"all (top level included)")
    if cross["uid_merged"]:
        notes.append(f"{cross['uid_merged']} new UIDs stand for several input UIDs")
    cells["uid_consistency"] = (
        f"{cross['uid_inconsistent_nested']} / {cross['nested_uids']} UIDs", "; ".join(notes))
    mm = collections.Counter(v["meta_mismatch"] for v in done.values()
                             if v["meta_mismatch"] and not v["meta_mismatch_in_input"])
    old = [k for k, v in done.items() if v["meta_mismatch"] and v["meta_mismatch_in_input"]]
    cells["meta"] = (f"{sum(mm.values())} / {n}",
                     count_note(mm) + (f"{'; ' if mm else ''}mismatch kept from the input in "
                                       f"{len(old)}" if old else ""))
    bd = collections.Counter(p for v in done.values() for p in v["bad_dates"])
    cells["bad_dates"] = (f"{len([1 for v in done.values() if v['bad_dates']])} / {n}",
                          count_note(bd))
    px = collections.Counter(v["pixels"] for v in done.values() if v["pixels"] not in
                             (None, "same", "padded"))
    pad = len([1 for v in done.values() if v["pixels"] == "padded"])
    cells["pixels"] = (f"{sum(px.values())} / {n}",
                       count_note(px) + (f"{'; ' if px else ''}odd-length input given its pad "
                                         f"byte in {pad}" if pad else ""))
    if not done:
        cells["dciodvfy"] = ("-", "")
    elif all("new_dciodvfy" in v for v in done.values()):
        nd = collections.Counter(e for v in done.values() for e in set(v["new_dciodvfy"]))
        files = [v for v in done.values() if v["new_dciodvfy"]]
        cells["dciodvfy"] = (
            f"{len(files)} / {n} ({sum(len(v['new_dciodvfy']) for v in files)} errors)",
            count_note(collections.Counter({short_error(k): c for k, c in nd.items()}), 4))
    else:
        cells["dciodvfy"] = ("-", "dciodvfy not installed")
    return cells


def short_error(line):
    line = re.sub(r"^Error - ", "", line)
    return line[:100]


ROWS = [
    ("failed", "Files failed or crashed (valid inputs)"),
    ("failed_invalid", "Files failed (invalid/ inputs: truncated, no meta, no pixels)"),
    ("review", "Routed to review instead of written (burned-in text suspected)"),
    ("unreadable", "Outputs pydicom cannot read"),
    ("dcmtk", "Outputs dcmtk cannot read (`dcmdump` fails; it reads the input)"),
    ("leak_text", "Identifying text left (names, IDs, institution, free text)"),
    ("leak_date", "Dates and times left"),
    ("leak_uid", "Original UIDs left"),
    ("private", "Private elements left"),
    ("pir", "Patient Identity Removed not YES"),
    ("method", "De-identification Method not recorded"),
    ("bad_uids", "Invalid UIDs written (grammar, > 64 chars)"),
    ("missing_uids", "Study / Series / SOP Instance UID removed"),
    ("grouping", "Study / series grouping broken (input study or series split)"),
    ("uid_consistency", "Sequence references not remapped consistently (UIDs that occur "
                        "inside sequences)"),
    ("meta", "File meta Media Storage SOP Instance UID != SOP Instance UID"),
    ("bad_dates", "Invalid DA / DT values written"),
    ("pixels", "Pixel Data changed (bytes)"),
    ("dciodvfy", "New dciodvfy errors (not in the input)"),
]


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(path, tools_cells, versions, corpus_desc, n_total, elapsed):
    with open(path, "w") as f:
        f.write("# De-identification: radlab against pydicom `deid` and Kitware "
                "`dicom-anonymizer`\n\n")
        f.write("What each tool leaves behind or breaks, measured by running it on the same "
                "files (not taken from its documentation). Written by `bench/deid_compare.py` "
                f"on {datetime.date.today().isoformat()}: {versions}. {corpus_desc}\n\n")
        f.write("Each tool ran with its default configuration on a copy of every file: "
                "radlab `deid --profile annex-e-basic` (one process per file, one key); "
                "`deid`'s default recipe (`get_identifiers` + `replace_identifiers`, what "
                "`deid identifiers --action all` runs); `dicom-anonymizer`'s `anonymize()` "
                "with no extra rules and private tags deleted (its CLI default); `deid`'s default "
                "keeps private elements (`remove_private=False`). Counts are "
                "files out of the outputs that could be compared (N below), unless the row says "
                "otherwise. Notes name elements and counts, never values.\n\n")
        head = "| check | " + " | ".join(f"{t} (N={tools_cells[t]['n']})" for t in TOOLS) + " |"
        f.write(head + "\n|---|" + "---|" * len(TOOLS) + "\n")
        for key, label in ROWS:
            row = [label]
            for t in TOOLS:
                c = tools_cells[t][key]
                row.append(cell(c[0] + (f" — {c[1]}" if c[1] else "")))
            f.write("| " + " | ".join(row) + " |\n")
        f.write("\n## What the checks mean\n\n")
        f.write(
            "- **Identifying values**: every text value (component of multi-valued and person "
            "name elements included, at least 4 bytes) of every input element that PS3.15 "
            "Table E.1-1 removes, empties or replaces, at any depth and in the file meta, is "
            "looked for in every text element of the output (any depth, file meta and private "
            "elements included; values of 6 characters or more also inside longer values and "
            "in OB/UN elements other than Pixel Data). The note says which input element's "
            "value was found and in how many files; \"moved/copied\" names the output element "
            "when it is not the same one. A hit in a public element that Annex E keeps and "
            "that held the same text in the input is not counted. Digits of an ID or date "
            "that happen to occur inside a new UID are not counted, nor is a hit on a value that "
            "the tool itself writes into three or more files (a placeholder such as a dummy "
            "date that an input already held).\n"
            "- **UIDs**: every UI value of the output must match the UID grammar and be at "
            "most 64 characters. Input and output are aligned element by element (same path); "
            "an input UID that gets two different new values anywhere in the corpus (in "
            "particular a reference inside a sequence that no longer matches the UID it "
            "points to) is inconsistent: the row counts such UIDs among the UIDs that occur "
            "inside sequences. Grouping: the files of one input study (series) must share one "
            "output study (series) UID; the corpus holds the same object in several "
            "encodings and several images of one study, so this is tested across files.\n"
            "- **Dates**: DA values must be YYYYMMDD calendar dates, DT values PS3.5 "
            "date-times; a year before 1850 (such as a 0001-01-01 placeholder, which "
            "dciodvfy rejects) is flagged too. Only values that differ from the input at "
            "the same place count.\n"
            "- **Pixel Data**: the raw bytes of (7FE0,0010) are compared; no tool is asked "
            "to clean pixels. Giving odd-length data (the element, or a fragment of "
            "encapsulated data) its trailing pad byte, as PS3.5 requires, is noted, not "
            "counted; encapsulated data whose items no longer parse (a pad byte appended "
            "after an odd-length last fragment, outside any item) counts as broken.\n"
            "- **dcmtk**: `dcmdump -q` of the output fails although it reads the input.\n"
            "- **dciodvfy**: its `Error` lines on the output, with values and UIDs masked, "
            "that it did not report on the input.\n\n")
        f.write("## Rerun\n\n```sh\ncargo build --release --bin radlab\nscripts/setup-system "
                "dicom3tools\nbench/deid_compare.py            # makes .venv-deid from "
                "bench/deid-requirements.txt\n```\n\nPer-file results (errors, leaked element "
                "names, new dciodvfy errors) go to `bench/out/deid_compare.json`. "
                f"The run took {elapsed:.0f} s.\n")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--run-python-tool":
        run_python_tool(*sys.argv[2:6])
        return
    ensure_venv()
    import warnings
    warnings.filterwarnings("ignore")
    import pydicom
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    from importlib import metadata

    ap = argparse.ArgumentParser()
    ap.add_argument("--radlab", default=os.path.join(ROOT, "target", "release", "radlab"))
    ap.add_argument("--corpus", default=os.environ.get("RADLAB_CORPUS",
                                                       os.path.join(ROOT, "..", "shared",
                                                                    "data")))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "deid-comparison.md"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "out",
                                                   "deid_compare.json"))
    ap.add_argument("--radlab-rev", help="the commit the binary was built from (default: "
                    "`git describe --dirty` of this checkout)")
    args = ap.parse_args()
    if not os.access(args.radlab, os.X_OK):
        sys.exit(f"{args.radlab}: build it first (cargo build --release --bin radlab)")
    t0 = time.time()
    annex = AnnexE(args.corpus)
    dicom_root = os.path.join(args.corpus, "dicom")
    sources = sorted(glob.glob(os.path.join(dicom_root, "**", "*.dcm"), recursive=True))
    work = tempfile.mkdtemp(prefix="radlab-deid-compare-")
    try:
        rel, inputs = {}, []
        for s in sources:
            r = os.path.relpath(s, dicom_root)
            dst = os.path.join(work, "in", r)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(s, dst)
            rel[dst] = r
            inputs.append(dst)
        invalid_names = {r for r in rel.values() if r.startswith("invalid" + os.sep)}
        list_file = os.path.join(work, "inputs.txt")
        with open(list_file, "w") as f:
            f.write("".join(i + "\n" for i in inputs))
        key = os.path.join(work, "key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        results = {}
        print(f"radlab on {len(inputs)} files", file=sys.stderr)
        results["radlab"] = run_radlab(args.radlab, inputs, os.path.join(work, "radlab"), key)
        for tool in ("deid", "dicom-anonymizer"):
            print(f"{tool} on {len(inputs)} files", file=sys.stderr)
            res = os.path.join(work, f"{tool}.json")
            with open(os.path.join(work, f"{tool}.log"), "w") as log:
                subprocess.run([sys.executable, os.path.abspath(__file__), "--run-python-tool",
                                tool, list_file, os.path.join(work, tool), res],
                               stdout=log, stderr=log, check=True,
                               timeout=PER_FILE_TIMEOUT * len(inputs))
            results[tool] = json.load(open(res))
        have_dciodvfy = shutil.which("dciodvfy") is not None
        cells, raw = {}, {}
        for tool in TOOLS:
            print(f"checking {tool}", file=sys.stderr)
            per_file, cross = analyse(tool, results[tool], rel, annex, have_dciodvfy)
            raw[tool] = {"files": per_file, "cross": cross}
            cells[tool] = summarise(per_file, cross, len(inputs) - len(invalid_names),
                                    len(invalid_names), sorted(invalid_names))
        radlab_version = subprocess.run([args.radlab, "--version"], capture_output=True,
                                        text=True).stdout.strip() or "radlab"
        git = args.radlab_rev or subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
            text=True).stdout.strip()
        dv = "not installed"
        if have_dciodvfy:
            dv = "installed (dicom3tools " + (subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", "dicom3tools"], capture_output=True,
                text=True).stdout.strip() or "?") + ")"
        dcmtk = "not installed"
        if shutil.which("dcmdump"):
            dcmtk = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "dcmtk"],
                                   capture_output=True, text=True).stdout.strip() or "installed"
        versions = (f"{radlab_version} ({git}), deid {metadata.version('deid')}, "
                    f"dicom-anonymizer {metadata.version('dicom-anonymizer')}, pydicom "
                    f"{pydicom.__version__}, dciodvfy {dv}, dcmtk {dcmtk}")
        corpus_desc = (f"Corpus: the {len(inputs)} DICOM files of the shared test corpus "
                       f"(`dicom/`: {len(inputs) - len(invalid_names)} valid, "
                       f"{len(invalid_names)} under `invalid/`).")
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1, default=str)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        write_report(args.out, cells, versions, corpus_desc, len(inputs), time.time() - t0)
        print(open(args.out).read())
    finally:
        if os.environ.get("RADLAB_KEEP_WORK"):
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
