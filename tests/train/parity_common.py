"""parity_common.py: what the trainer's PyTorch parity scripts share (test_train_parity.py,
test_full_parity.py): the PASS/FAIL report with its list of failures, a reader of the drivers'
.safetensors output, and the feature comparison (|ours - ref| <= 1e-5 + 1e-4 |ref|, the bound
the scripts state)."""
import json
import struct

import numpy as np

FAILURES = []


def report(name, ok, msg):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {msg}", flush=True)
    if not ok:
        FAILURES.append(name)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        b, e = h["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(h["shape"])
    return out


def compare_features(name, ours, ref):
    diff = np.abs(ours.astype(np.float64) - ref)
    excess = diff - (1e-5 + 1e-4 * np.abs(ref))
    i = np.unravel_index(np.argmax(diff), diff.shape)
    report(name, bool(np.all(np.isfinite(ours)) and np.all(excess <= 0)),
           f"max_abs_err={diff.max():.3e} at {list(i)} (ours {ours[i]:.7f}, ref {ref[i]:.7f})")
