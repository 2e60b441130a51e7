"""A third-party DICOMweb client (dicomweb-client, the library of highdicom and many
pipelines) against a radlab project: search, metadata, instances, frames in three forms,
rendered images, and STOW-RS. Every object read is compared with the original file read by
pydicom (pixels decoded by pylibjpeg).

usage: dicomweb_client_check.py BASE_URL TOKEN FILES_JSON STOW_FILE
FILES_JSON: a JSON list of the paths of the files in the project.
Prints one JSON object with what was checked; exits non-zero with a message on any
mismatch.
"""
import io
import json
import sys

import numpy as np
import pydicom
import pydicom.uid
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.encaps import generate_frames

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def stored_frames(ds):
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    return list(generate_frames(ds.PixelData, number_of_frames=n))


def main():
    base, token, files_json, stow_file = sys.argv[1:5]
    client = DICOMwebClient(url=base, headers={"Authorization": f"Bearer {token}"})
    files = json.loads(files_json)
    originals = {}
    for path in files:
        ds = pydicom.dcmread(path, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:
            # A bare data set (ACR-NEMA style): implicit VR little endian.
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        originals[ds.SOPInstanceUID] = (path, ds)
    report = {"studies": 0, "instances": 0, "frames_stored": 0, "frames_decoded": 0,
              "frames_by_media_type": 0, "rendered": 0, "metadata": 0, "stored": 0}

    studies = client.search_for_studies()
    study_uids = {s["0020000D"]["Value"][0] for s in studies}
    want = {ds.StudyInstanceUID for _, ds in originals.values()}
    if study_uids != want:
        fail(f"search_for_studies: {sorted(study_uids)} != {sorted(want)}")
    report["studies"] = len(study_uids)

    for sop, (path, ds) in sorted(originals.items()):
        st, se = ds.StudyInstanceUID, ds.SeriesInstanceUID
        found = client.search_for_instances(study_instance_uid=st, series_instance_uid=se)
        if sop not in {i["00080018"]["Value"][0] for i in found}:
            fail(f"{path}: not found by search_for_instances")

        # Metadata, read back into a pydicom data set.
        meta = client.retrieve_instance_metadata(st, se, sop)
        mds = pydicom.Dataset.from_json(meta, bulk_data_uri_handler=lambda tag, vr, uri: b"")
        for kw in ("SOPInstanceUID", "Rows", "Columns", "BitsAllocated", "PhotometricInterpretation",
                   "Modality", "PatientID"):
            if kw in ds and getattr(mds, kw, None) != getattr(ds, kw):
                fail(f"{path}: metadata {kw}: {getattr(mds, kw, None)!r} != {getattr(ds, kw)!r}")
        report["metadata"] += 1

        # The instance: the same object.
        got = client.retrieve_instance(st, se, sop)
        if got.SOPInstanceUID != sop or got.PixelData != ds.PixelData:
            fail(f"{path}: retrieve_instance gives another object")
        report["instances"] += 1

        ts = str(ds.file_meta.TransferSyntaxUID)
        compressed = ds.file_meta.TransferSyntaxUID.is_compressed
        pixels = ds.pixel_array
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        first = pixels if frames == 1 else pixels[0]
        # Frames as stored.
        [raw] = client.retrieve_instance_frames(st, se, sop, frame_numbers=[1],
                                                media_types=(("application/octet-stream", "*"),))
        if compressed:
            if raw != stored_frames(ds)[0]:
                fail(f"{path}: frame 1 as stored differs from the file's bitstream")
        report["frames_stored"] += 1
        # Frames decoded to Explicit VR Little Endian: the pixels pydicom decodes.
        [dec] = client.retrieve_instance_frames(st, se, sop, frame_numbers=[1],
                                                media_types=(("application/octet-stream", EXPLICIT_LE),))
        bits = int(ds.BitsAllocated)
        dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[bits]
        values = np.frombuffer(dec, dtype=np.dtype(dtype).newbyteorder("<"))
        if ds.SamplesPerPixel == 1:
            mask = (1 << int(ds.BitsStored)) - 1
            a = values.astype(np.int64) & mask
            b = first.astype(np.int64).reshape(-1) & mask
            # Lossy JPEG: IJG-family decoders may round the IDCT differently (by 1 at most,
            # as crates/radlab-dicom/tests/decode_reference.rs allows); all else exact.
            tolerance = 1 if ts in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51") else 0
            if a.shape != b.shape or int(np.max(np.abs(a - b))) > tolerance:
                fail(f"{path}: decoded frame 1 differs from pydicom's pixels "
                     f"({a.shape} vs {b.shape}, {int(np.sum(a != b)) if a.shape == b.shape else '-'} differ)")
        report["frames_decoded"] += 1
        # By the bitstream's own media type.
        media = {"1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
                 "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
                 "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.80": "image/jls",
                 "1.2.840.10008.1.2.4.81": "image/jls"}.get(ts)
        if media:
            [by_type] = client.retrieve_instance_frames(st, se, sop, frame_numbers=[1],
                                                        media_types=((media, ts),))
            if by_type != stored_frames(ds)[0]:
                fail(f"{path}: frame 1 as {media} differs from the file's bitstream")
            report["frames_by_media_type"] += 1

        # Rendered: a PNG of the image's size.
        png = client.retrieve_instance_rendered(st, se, sop, media_types=("image/png",))
        img = Image.open(io.BytesIO(png))
        if img.size != (int(ds.Columns), int(ds.Rows)):
            fail(f"{path}: rendered {img.size} for {ds.Columns} x {ds.Rows}")
        report["rendered"] += 1

    # STOW-RS: store one more, find it, read it back.
    new = pydicom.dcmread(stow_file)
    answer = client.store_instances(datasets=[new])
    refs = answer.get("ReferencedSOPSequence") if hasattr(answer, "get") else None
    if not refs or refs[0].ReferencedSOPInstanceUID != new.SOPInstanceUID:
        fail(f"store_instances: unexpected answer {answer}")
    back = client.retrieve_instance(new.StudyInstanceUID, new.SeriesInstanceUID, new.SOPInstanceUID)
    if back.PixelData != new.PixelData:
        fail("the stored instance reads back differently")
    report["stored"] = 1
    print(json.dumps(report))


if __name__ == "__main__":
    main()
