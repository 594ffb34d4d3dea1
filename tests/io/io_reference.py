#!/usr/bin/env python3
"""io_reference.py: independent Python (numpy/h5py) ends of the io tests.

The `safetensors` package is not installed, so this has its own tiny writer and reader that
follow the format exactly as the Python library does (8-byte little-endian header length,
compact JSON, header padded with spaces to a multiple of 8, raw little-endian data).

  io_reference.py st-gen DIR     write DIR/py_mixed.safetensors (F32, F16, BF16 tensors, keys
                                 deliberately unsorted, metadata last) and
                                 DIR/py_reference.safetensors (the same tensors as the exact
                                 fp32 values numpy computes: f16.astype(f32), bf16 bits << 16)
  io_reference.py st-check FILE  read a file written by safecl and check its layout (padding,
                                 sorted names, contiguous offsets, F32) and values (st_pattern)
  io_reference.py h5-check FILE  read a features file written by test_h5 with h5py and check it

Exit status 0 on success, 1 on any mismatch (printed).
"""
import json
import struct
import sys

import numpy as np


def st_write(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, raw bytes) in the order given."""
    header, offset, blobs = {}, 0, []
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def bf16_bits(x):
    """float32 array -> bfloat16 bit patterns, round to nearest even, NaN kept quiet."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), r).astype("<u2")


def st_gen(out_dir):
    rng = np.random.default_rng(2024)
    f32 = rng.standard_normal((3, 5)).astype("<f4")
    f16_all = np.arange(65536, dtype=np.uint32).astype("<u2").reshape(256, 256)
    f16_vals = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 6e-8, 1e-5], dtype="<f2")
    bf_src = (rng.standard_normal((4, 6)) * 1000.0).astype(np.float32)
    bf_src[0, :4] = [np.inf, -np.inf, np.nan, 3.0e-39]
    bf = bf16_bits(bf_src)
    mixed = [
        ("bf16.w", "BF16", bf.shape, bf.tobytes()),
        ("f32.w", "F32", f32.shape, f32.tobytes()),
        ("f16.all", "F16", f16_all.shape, f16_all.tobytes()),
        ("f16.vals", "F16", f16_vals.shape, f16_vals.tobytes()),
    ]
    st_write(f"{out_dir}/py_mixed.safetensors", mixed, {"format": "pt", "source": "numpy"})
    with np.errstate(invalid="ignore"):
        ref = {
            "bf16.w": (bf.astype(np.uint32) << 16).view(np.float32),
            "f32.w": f32.astype(np.float32),
            "f16.all": f16_all.view(np.float16).astype(np.float32),
            "f16.vals": f16_vals.astype(np.float32),
        }
    st_write(f"{out_dir}/py_reference.safetensors",
             [(k, "F32", v.shape, v.astype("<f4").tobytes()) for k, v in sorted(ref.items())])
    return 0


def st_pattern(name_index, n):
    """Values the C side writes for tensor k of the st-check file: k + i/8 - 3, exact in f32."""
    return (name_index + np.arange(n, dtype=np.float64) / 8.0 - 3.0).astype(np.float32)


def st_check(path):
    errors = []
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    text = blob[8:8 + n]
    if (8 + n) % 8:
        errors.append(f"header length {n} not padded to 8")
    if not text.rstrip(b" ").endswith(b"}"):
        errors.append("header padding is not spaces")
    header = json.loads(text)
    data = blob[8 + n:]
    meta = header.pop("__metadata__", None)
    if meta != {"writer": "safecl", "kind": "check"}:
        errors.append(f"metadata {meta}")
    names = list(header)
    if names != sorted(names):
        errors.append(f"tensors not sorted by name: {names}")
    offset = 0
    for k, name in enumerate(names):
        e = header[name]
        if e["dtype"] != "F32":
            errors.append(f"{name}: dtype {e['dtype']}")
        if e["data_offsets"][0] != offset:
            errors.append(f"{name}: not contiguous")
        b, end = e["data_offsets"]
        offset = end
        got = np.frombuffer(data[b:end], dtype="<f4")
        numel = int(np.prod(e["shape"])) if e["shape"] else 1
        if got.size != numel or not np.array_equal(got, st_pattern(k, numel)):
            errors.append(f"{name}: values differ")
    if offset != len(data):
        errors.append(f"data section {len(data)} bytes, tensors end at {offset}")
    for e in errors:
        print("st-check:", e)
    print(f"st-check {path}: {len(names)} tensors, {'FAILED' if errors else 'ok'}")
    return 1 if errors else 0


def h5_check(path):
    import h5py
    errors = []
    with h5py.File(path, "r") as f:
        a = f.attrs
        for key in ("code_version", "hdf5_version", "mpi_library_version", "openblas_config",
                    "hostname", "created_utc", "simd_isa"):
            if not isinstance(a.get(key), str) or not a[key]:
                errors.append(f"attribute {key} = {a.get(key)!r}")
        if int(a.get("schema_version", -1)) != 3 or int(a.get("threads", 0)) < 1:
            errors.append("schema_version/threads")
        feats = f["features"][...]
        want = (np.arange(feats.size, dtype=np.float64) * 0.5 - 7.0).astype(np.float32)
        if feats.dtype != np.float32 or feats.shape != (5, 3) or \
                not np.array_equal(feats.ravel(), want):
            errors.append(f"features {feats.dtype} {feats.shape}")
        classes = [s.decode() if isinstance(s, bytes) else s for s in f["meta/classes"][...]]
        if classes != ["cat", "caf\u00e9", "\u65e5\u672c", ""]:
            errors.append(f"classes {classes}")
        if f["labels"].dtype != np.int32 or list(f["labels"][...]) != [0, 1, 2, 1, 0]:
            errors.append("labels")
        if f["meta"].attrs.get("dataset") != "synthetic":
            errors.append(f"meta@dataset {f['meta'].attrs.get('dataset')!r}")
    for e in errors:
        print("h5-check:", e)
    print(f"h5-check {path}: {'FAILED' if errors else 'ok'}")
    return 1 if errors else 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("st-gen", "st-check", "h5-check"):
        print(__doc__, file=sys.stderr)
        return 2
    return {"st-gen": st_gen, "st-check": st_check, "h5-check": h5_check}[argv[1]](argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
