#!/usr/bin/env python3
"""load_results.py: read safecl trial files with h5py and print them as tables.

    python3 analysis/load_results.py RUN_DIR [RUN_DIR ...] [--curves]

Finds trials the way `safecl report` does (DIR/trial.h5, and DIR/trials/<id>/ for a sweep),
prints one line per trial (status, dataset, method, seed, the grid values, final and average
incremental accuracy, forgetting, validation accuracy, every predictor; a failed trial's
message; "random weights" for a trial whose backbone had random weights, row["backbone_random"]),
then mean +- sample std over seeds per (dataset, method, configuration): with pandas
when it is installed, else with numpy. The grid values are the config keys whose values differ
between trials of one (dataset, method) (seed and paths left out), one column each, so that a
sweep's grid reads as columns. --curves adds the accuracy after each session. The file layout
is analysis/SCHEMA.md.

This is a starting point for your own analyses, not the report: it prints the test accuracy
of every configuration, so do not pick hyperparameters from it (`safecl report` picks them on
the validation split).
"""
import argparse
import ctypes
import ctypes.util
import math
import os
import re
import sys

import h5py
import numpy as np

# RUN_TRIAL_SCHEMA_VERSION in include/safecl/trial.h; 1 differs only in what this script does not
# read, 3 only in storing strings fixed-length (h5py gives bytes: text() decodes them)
SCHEMA_VERSIONS = (1, 2, 3)
# Keys that do not make another configuration (run/trial_config.c marks them no_identity).
NOT_A_POINT = {"seed", "run.dir", "threads", "eval.batch", "dataset.root", "train.ckpt_every"}


def trial_dirs(run_dir):
    """The trial directories under a run directory, in name order."""
    own = [f for f in ("trial.h5", "failed.txt", "ckpt.h5") if os.path.exists(os.path.join(run_dir, f))]
    if own:
        yield run_dir
    trials = os.path.join(run_dir, "trials")
    if os.path.isdir(trials):
        for name in sorted(os.listdir(trials)):
            if not name.startswith(".") and os.path.isdir(os.path.join(trials, name)):
                yield os.path.join(trials, name)


def text(value):
    """A string attribute or element: schema 3 stores strings fixed-length, which h5py returns as
    bytes (numpy.bytes_); older schemas variable-length, which it returns as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def config_point(config):
    """The config lines that name a hyperparameter point (seed and paths left out)."""
    keep = []
    for line in config.splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and key not in NOT_A_POINT:
            keep.append(line.strip())
    return "\n".join(keep)


def config_values(config):
    """{key: value text} of flat `key = value;` lines (nested groups are read as dotted keys)."""
    out, prefix = {}, []
    for line in config.splitlines():
        line = line.strip()
        if line.endswith("= {") or line.endswith("={"):
            prefix.append(line.split("=", 1)[0].strip())
        elif line.startswith("}"):
            prefix = prefix[:-1]
        elif "=" in line and line.endswith(";"):
            key, value = (x.strip() for x in line[:-1].split("=", 1))
            out[".".join(prefix + [key])] = value
    return out


def unquote(value):
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def read_without_results(path):
    """A trial without trial.h5: failed (failed.txt) or unfinished (trial.cfg, or nothing), placed
    from the config lines of those files when they have dataset.name, method.name and seed."""
    row = {"path": path, "status": "unfinished"}
    name = None
    for f, status in (("failed.txt", "failed"), ("trial.cfg", "unfinished")):
        if os.path.exists(os.path.join(path, f)):
            row["status"], name = status, f
            break
    if name is None:
        return row
    with open(os.path.join(path, name)) as f:
        text = f.read()
    values = config_values(text)
    if "error" in values:
        row["message"] = unquote(values.pop("error"))
    if {"dataset.name", "method.name", "seed"} <= values.keys():
        row.update(dataset=unquote(values["dataset.name"]), method=unquote(values["method.name"]),
                   seed=int(values["seed"]),
                   point=config_point("\n".join(l for l in text.splitlines()
                                                if not l.startswith("error"))))
    return row


WHOLE_MAGIC = b"SAFECLWF"  # the whole-file checksum record in the user block (analysis/SCHEMA.md)


def xxh3_64(data):
    """XXH3-64 of bytes through libxxhash (safecl links it); None where it is missing."""
    name = ctypes.util.find_library("xxhash")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
    return lib.XXH3_64bits(data, len(data))


def check_whole_file(h5):
    """Raises OSError when the file's whole-file checksum record does not match its bytes, before
    h5py (HDF5 1.10, which a damaged file can crash) parses it. Files without the record, or
    without libxxhash to check it, pass."""
    with open(h5, "rb") as f:
        data = f.read()
    if len(data) < 512 or WHOLE_MAGIC not in (data[:8], data[504:512]):
        return
    block = bytearray(data[:512])
    block[32:40] = bytes(8)
    le = lambda at, n: int.from_bytes(data[at:at + n], "little")
    own = xxh3_64(bytes(block))
    if own is None:
        return
    if (own != le(32, 8) or le(8, 4) != 1 or le(12, 4) != 512 or le(16, 8) != len(data)
            or xxh3_64(data[512:]) != le(24, 8)):
        raise OSError("%s: whole-file checksum mismatch: damaged" % h5)


def read_trial(path):
    """A dict for one trial directory; status is finished, failed or unfinished. A trial.h5 that
    h5py cannot read whole (damaged bytes) makes the trial failed, with the reason, as in
    `safecl report`. The whole-file checksum is checked before h5py opens the file; the
    per-dataset checksums are not (the report checks them)."""
    h5 = os.path.join(path, "trial.h5")
    if not os.path.exists(h5):
        return read_without_results(path)
    try:
        check_whole_file(h5)
        return read_trial_h5(path, h5)
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError) as e:
        row = read_without_results(path)
        row.update(status="failed", message="damaged trial.h5, not used: %s" % e)
        return row


def read_trial_h5(path, h5):
    with h5py.File(h5, "r") as f:
        a = f.attrs
        version = int(a.get("schema_version", -1))
        if version not in SCHEMA_VERSIONS:
            sys.exit("%s: schema_version %s, this script reads %s: use the load_results.py of the "
                     "safecl that wrote it" % (h5, version, " and ".join(map(str, SCHEMA_VERSIONS))))
        row = {"path": path, "id": text(a["trial_id"]),
               "status": "finished" if text(a["status"]) == "finished" else "failed",
               "dataset": text(a["dataset"]), "method": text(a["method"]),
               "category": text(a["method_category"]), "seed": int(a["seed"]),
               # identity_config is flat `key = value;` text; config is nested libconfig in
               # newer files, flat in files older than identity_config
               "point": config_point(text(a["identity_config"] if "identity_config" in a else a["config"])),
               "val_acc": float(a["val_acc"])}
        # trial.h5's backbone_random; in files older than it, a weights hash of "random"
        row["backbone_random"] = (int(a["backbone_random"]) if "backbone_random" in a else
                                  int(text(a.get("backbone_weights_xxh3", "")) == "random"))
        if row["status"] != "finished":
            return row
        primary = text(a["primary_predictor"])
        row["predictors"] = {}
        for name, g in f["predictors"].items():
            row["predictors"][name] = {
                "final_acc": float(g.attrs["final_acc"]), "avg_acc": float(g.attrs["avg_acc"]),
                "forgetting": float(g.attrs["forgetting"]), "acc": g["acc"][...],
                "acc_matrix": g["acc_matrix"][...]}
        row["primary"] = primary
    return row


def fmt(x):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else "%.2f" % x


def grid_keys(rows):
    """The config keys whose values differ between placed trials of one (dataset, method), in
    order of first appearance; each row gets row["grid"] = {key: value} for them."""
    groups = {}
    for r in rows:
        if "point" in r:
            groups.setdefault((r["dataset"], r["method"]), []).append(config_values(r["point"]))
    keys = []
    for points in groups.values():
        for p in points:
            for k in p:
                if k not in keys and len({q.get(k) for q in points}) > 1:
                    keys.append(k)
    for r in rows:
        values = config_values(r.get("point", ""))
        r["grid"] = {k: unquote(values[k]) for k in keys if k in values}
    return keys


def print_trials(rows, curves, keys):
    width = [max([len(k)] + [len(r["grid"].get(k, "")) for r in rows]) for k in keys]
    grid = lambda r: "".join(" %*s" % (w, r["grid"].get(k, "")) for k, w in zip(keys, width))
    print("%-10s %-14s %-10s %-16s %6s%s %7s %7s %7s %7s" % (
        "status", "dataset", "method", "predictor", "seed",
        "".join(" %*s" % (w, k) for k, w in zip(keys, width)), "final", "avg", "forget", "val"))
    for r in rows:
        if r["status"] != "finished":
            print("%-10s %-14s %-10s %-16s %6s%s  %s%s" % (
                r["status"], r.get("dataset", "?"), r.get("method", "?"), "", r.get("seed", "?"),
                grid(r), r["path"], ": " + r["message"] if r.get("message") else ""))
            continue
        names = [r["primary"]] + sorted(n for n in r["predictors"] if n != r["primary"])
        for name in names:
            p = r["predictors"][name]
            print("%-10s %-14s %-10s %-16s %6d%s %7s %7s %7s %7s" % (
                r["status"], r["dataset"], r["method"], name, r["seed"], grid(r),
                fmt(p["final_acc"]), fmt(p["avg_acc"]), fmt(p["forgetting"]),
                fmt(r["val_acc"]) if name == r["primary"] else "") +
                  ("  random weights" if r["backbone_random"] and name == r["primary"] else ""))
            if curves:
                print("%55s%s" % ("", " ".join("%.2f" % v for v in p["acc"])))


def summary_records(rows):
    """One record per finished trial and predictor, for the grouped summary, and the
    configurations (config texts) of each (dataset, method) in order of appearance."""
    points = {}
    out = []
    seen = set()
    for r in rows:
        if r["status"] != "finished" or r["id"] in seen:  # a copied trial directory counts once
            continue
        seen.add(r["id"])
        key = (r["dataset"], r["method"])
        labels = points.setdefault(key, [])
        if r["point"] not in labels:
            labels.append(r["point"])
        for name, p in r["predictors"].items():
            out.append({"dataset": r["dataset"], "method": r["method"], "predictor": name,
                        "point": labels.index(r["point"]), "seed": r["seed"],
                        "grid": " ".join("%s=%s" % kv for kv in r["grid"].items()),
                        "final_acc": p["final_acc"], "avg_acc": p["avg_acc"],
                        "backbone_random": r["backbone_random"]})
    return out, points


def print_points(points):
    """Names configuration #k of each (dataset, method) by the config lines that differ."""
    for (dataset, method), texts in sorted(points.items()):
        if len(texts) < 2:
            continue
        common = set.intersection(*(set(t.splitlines()) for t in texts))
        for k, t in enumerate(texts):
            print("%s %s #%d: %s" % (dataset, method, k,
                                      " ".join(l for l in t.splitlines() if l not in common)))


def print_summary(records):
    print("\nmean +- std over seeds per (dataset, method, predictor, configuration # and its grid "
          "values):")
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        df = pd.DataFrame(records)
        keys = ["dataset", "method", "predictor", "point", "grid"]
        g = df.groupby(keys)[["final_acc", "avg_acc"]]
        print(g.agg(["mean", "std", "count"]).round(2).to_string())
        return
    groups = {}
    for rec in records:
        groups.setdefault((rec["dataset"], rec["method"], rec["predictor"], rec["point"],
                           rec["grid"]), []).append(rec)
    for key in sorted(groups):
        cells = []
        for metric in ("final_acc", "avg_acc"):
            x = np.array([rec[metric] for rec in groups[key]])
            std = x.std(ddof=1) if len(x) > 1 else float("nan")
            cells.append("%s %s +- %s" % (metric, fmt(x.mean()), fmt(std)))
        print("%-14s %-10s %-16s #%d %s %s  (n=%d)" % (key + ("  ".join(cells), len(groups[key]))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", help="run directories or trial directories")
    ap.add_argument("--curves", action="store_true", help="print accuracy after each session")
    args = ap.parse_args()
    rows = [read_trial(p) for d in args.dirs for p in trial_dirs(d)]
    if not rows:
        sys.exit("no trials under " + ", ".join(args.dirs))
    print_trials(rows, args.curves, grid_keys(rows))
    records, points = summary_records(rows)
    print_summary(records)
    print_points(points)


if __name__ == "__main__":
    main()
