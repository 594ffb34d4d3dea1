#!/usr/bin/env python3
"""make_corpus.py: writes the seed corpus of tests/fuzz (corpus/<target>/seed_*), the small valid
inputs each fuzz target starts from. Deterministic: rerunning it rewrites the same bytes.

Run with the system interpreter (it needs PIL for the images): /usr/bin/python3 make_corpus.py.
Crash inputs that tests/fuzz/run.sh saved and a human moved into corpus/<target>/ are named
crash_*; this script never touches them. The config seeds are the repository's own configs/
files, copied. Nothing here is bigger than a few kilobytes."""
import io
import json
import os
import shutil
import struct
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=None):
    """tensors: [(name, dtype, shape, raw bytes)] laid out in order."""
    header, off, blob = {}, 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blob


def images():
    """Small images of each kind the decoder converts: RGB, gray, palette, RGBA, 16-bit gray
    PNG; baseline, progressive, gray and CMYK JPEG."""
    rgb = Image.new("RGB", (5, 3))
    rgb.putdata([(i * 40 % 256, i * 90 % 256, i * 17 % 256) for i in range(15)])
    out = {}
    for name, im, fmt, kw in [
            ("rgb.png", rgb, "PNG", {}),
            ("gray.png", rgb.convert("L"), "PNG", {}),
            ("palette.png", rgb.convert("P"), "PNG", {}),
            ("rgba.png", rgb.convert("RGBA"), "PNG", {}),
            ("gray16.png", rgb.convert("L").convert("I"), "PNG", {}),
            ("rgb.jpg", rgb, "JPEG", {"quality": 90}),
            ("progressive.jpg", rgb, "JPEG", {"progressive": True}),
            ("gray.jpg", rgb.convert("L"), "JPEG", {}),
            ("cmyk.jpg", rgb.convert("CMYK"), "JPEG", {})]:
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        out[name] = b.getvalue()
    return out


def ledger_line(typ, tid="-", group=0, attempt=0, sessions=0, count=0, seconds=0.0, final=0.0,
                avg=0.0, val=0.0, text=""):
    esc = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    body = "%s %.17g %s %d %d %d %d %.17g %.17g %.17g %.17g %s" % (
        typ, 1764600000.0, tid, group, attempt, sessions, count, seconds, final, avg, val, esc)
    return "%08x %s\n" % (zlib.crc32(body.encode()), body)


def ledger():
    a, b = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    return "".join([
        ledger_line("JOB", group=1, attempt=1, text="42 ranks=2 sweep=tiny"),
        ledger_line("PLAN", a, count=0, seconds=3.5, text="synthetic\tsimplecil\t1\tx=1"),
        ledger_line("PLAN", b, count=1, seconds=3.5, text="synthetic\tsimplecil\t2\t"),
        ledger_line("START", a, group=0, attempt=1),
        ledger_line("PROGRESS", a, group=0, attempt=1, sessions=2),
        ledger_line("FINISHED", a, seconds=2.0, final=80.5, avg=85.25, val=float("nan")),
        ledger_line("START", b, group=0, attempt=1),
        ledger_line("RETRY", b, attempt=1, text="io: disk full"),
        ledger_line("START", b, group=0, attempt=2),
        ledger_line("FAILED", b, attempt=2, text="format: bad\nthing"),
        ledger_line("STOP", text="signal 15"),
        ledger_line("END", count=0, text="complete")])


def hexbytes(b):
    return b.hex()


def packed(imgs):
    png, jpg = imgs["rgb.png"], imgs["rgb.jpg"]
    blob = png + jpg
    return "\n".join([
        "attr / schema_version i64 1",
        "attr / kind str packed-dataset",
        "i32 train/labels 0 1",
        "i64 train/offsets 0 %d %d" % (len(png), len(blob)),
        "str train/paths train/a/x.png train/b/y.jpg",
        "str train/class_names a b",
        "attr train manifest_hi i64 1",
        "attr train manifest_lo i64 2",
        "blob train/blob " + hexbytes(blob)]) + "\n"


def trial(primary="linear", extra_pred=True, authors=False):
    cfg = ('dataset.name = \\"synthetic\\";\\ndataset.shuffle = true;\\ndataset.order_seed = -1;'
           '\\nmethod.name = \\"safe\\";\\neval.val_fraction = 0.0;\\nseed = 1;\\n')
    lines = ["attr / schema_version i64 2",
             "attr / kind str trial",
             "attr / trial_id str 0123456789abcdef0123456789abcdef",
             "attr / status str finished",
             "attr / config str " + cfg,
             "attr / method str safe",
             "attr / method_category str safe",
             "attr / dataset str synthetic",
             "attr / protocol str class-incremental",
             "attr / n_sessions i64 3",
             "attr / n_classes i64 6",
             "attr / seed i64 1",
             "attr / val_acc f64 nan",
             "attr / primary_predictor str " + primary,
             "i64 class_order 3 1 0 5 4 2"]
    preds = [primary] + (["slow"] if extra_pred else [])
    for p in preds:
        lines += ["attr predictors/%s final_acc f64 80.5" % p,
                  "attr predictors/%s avg_acc f64 85.25" % p,
                  "attr predictors/%s forgetting f64 4.0" % p,
                  "f64 predictors/%s/acc 90 85.25 80.5" % p]
    if authors:
        lines += ["f64 diagnostics/authors_protocol_acc 91 86 81",
                  "attr diagnostics authors_protocol_final f64 81",
                  "attr diagnostics authors_protocol_avg f64 86"]
    return "\n".join(lines) + "\n"


def keys_of(*files):
    """The dotted key names of the key tables in these source files (K("a.b", ...) rows)."""
    import re
    names = set()
    for name in files:
        with open(os.path.join(ROOT, name)) as f:
            names.update(re.findall(r'^\s*K[A-Z]*\("([a-z0-9_]+(?:\.[a-z0-9_]+)+)"', f.read(), re.M))
    return sorted(names)


def write_dict(target, words):
    """A libFuzzer dictionary (dict/<target>.dict): one quoted token a line."""
    d = os.path.join(HERE, "dict")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, target + ".dict"), "w") as f:
        f.write("# Generated by tests/fuzz/make_corpus.py: tokens the %s parser knows.\n" % target)
        for w in words:
            f.write('"%s"\n' % "".join(
                "\\\\" if c == "\\" else '\\"' if c == '"' else
                c if " " <= c <= "~" else "\\x%02X" % ord(c) for c in w))


def dictionaries():
    syntax = ["@include \"", " = ", ";", "{", "}", "[", "]", "(", ")", ",", "true", "false",
              "L", "0x", "1e308", "9223372036854775807", "4294967296", "\"", "#", "//", "/*"]
    trial = keys_of("src/run/trial_config.c")
    write_dict("config", trial + syntax)
    write_dict("sweep", trial + keys_of("src/orch/sweep_file.c") + syntax + [
        "sweep", "run", "base", "datasets", "methods", "seeds", "grid", "points", "overrides",
        "file", "key", "values", "b.cfg", "d.cfg", "m.cfg"])
    write_dict("ledger", ["JOB", "PLAN", "START", "PROGRESS", "FINISHED", "RETRY", "FAILED",
                          "STOPPED", "STOP", "END", "nan", "inf", "-", "1e300", "\\t", "\\n"])
    h5 = ["group ", "attr ", " i64 ", " f64 ", " str ", "i32 ", "i64 ", "f64 ", "f64x2 ", "str ",
          "blob ", "\\s", "\\n", "nan", "inf", "-1", "2147483648", "/"]
    write_dict("packed", h5 + ["schema_version", "kind", "packed-dataset", "train/labels",
                               "train/offsets", "train/paths", "train/class_names", "train/blob",
                               "manifest_hi", "manifest_lo", "train"])
    write_dict("trial_h5", h5 + [
        "schema_version", "kind", "trial", "trial_id", "status", "finished", "config", "method",
        "method_category", "dataset", "protocol", "n_sessions", "seed", "val_acc",
        "primary_predictor", "predictors/", "final_acc", "avg_acc", "forgetting", "acc",
        "diagnostics/authors_protocol_acc", "authors_protocol_final", "authors_protocol_avg",
        "class_order", "class-incremental", "domain-incremental", "dataset.order_seed",
        "dataset.shuffle"])
    write_dict("published", ["source", "table", "method", "category", "dataset", "metric",
                             "value", "protocol_note", "final_acc", "avg_acc", "forgetting",
                             "prompt", "representation", "mixture", "safe", "\"\"", ","])
    write_dict("domainnet", ["img/0.png", "img/1.jpg", "img/sub/2.png", "../", "/", "./", " ",
                             "\t", "\r\n", "-1", "1048575", "1048576", "2147483648",
                             "2000000000", "9223372036854775808"])
    write_dict("safetensors", ["\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"F32\"",
                               "\"F16\"", "\"BF16\"", "\"__metadata__\"", "\"I64\"",
                               "18446744073709551615", "[]", "{}", ":", ","])


def main():
    dictionaries()
    put("safetensors", "f32.safetensors", safetensors(
        [("a", "F32", [2, 2], struct.pack("<4f", 1, -2, 0.5, 3)),
         ("b", "F16", [3], struct.pack("<3H", 0x3C00, 0x8001, 0x7C00))], {"format": "pt"}))
    put("safetensors", "bf16.safetensors", safetensors(
        [("cls_token", "BF16", [1, 1, 2], struct.pack("<2H", 0x3F80, 0xFF80)),
         ("empty", "F32", [0, 4], b"")]))
    imgs = images()
    for name, data in imgs.items():
        put("image", name, data)
    # The trial's config files: every one of configs/ except sweeps, which fuzz_sweep takes.
    for sub in ("backbones", "datasets", "features", "methods"):
        for name in sorted(os.listdir(os.path.join(ROOT, "configs", sub))):
            with open(os.path.join(ROOT, "configs", sub, name), "rb") as f:
                put("config", sub + "_" + name, f.read())
    put("config", "overrides.cfg",
        'seed = 4294967296;\n@include "input.cfg"\n\0dataset.init_cls=10\nseed=7\n')
    put("config", "include.cfg", 'dataset = { name = "x"; };\n@include "missing.cfg"\n')
    # the flat `name = value;` form older trial.h5 files hold as config (config.c, load_flat)
    put("config", "flat.cfg", 'dataset.name = "synthetic";\nseed = 7;\ntrain.lr = 0.01;\n'
        'backbone.ignore_unexpected = false;\nrun.dir = "a\\"b";\n')
    put("sweep", "tiny.cfg", """sweep = {
  name = "tiny";
  base = ["b.cfg"];
  datasets = ("d.cfg", { file = "d.cfg"; overrides = ["dataset.init_cls=3"]; });
  methods = ({ file = "m.cfg"; grid = ({ key = "train.lr"; values = [0.1, 0.01]; });
               points = (["train.epochs_first=1"], ["train.epochs_first=2"]); });
  seeds = [1, 2];
  overrides = ["eval.batch=8"];
  max_retries = 1;
};
run = { dir = "run"; };
\0sweep.seeds=3,4
train.lr=0.5
""")
    put("sweep", "quickstart.cfg", """sweep = {
  name = "q";
  base = "b.cfg";
  datasets = ["d.cfg"];
  methods = ["m.cfg"];
  grid = ({ key = "seed"; values = [1, 2]; });
};
""")
    put("ledger", "raw.log", b"\0" + ledger().encode())
    put("ledger", "fixed.log", b"\1" + ledger().encode())
    put("domainnet", "list.txt", "img/0.png 0\nimg/1.jpg 2\nimg/sub/2.png 1\n")
    put("domainnet", "crlf.txt", "img/0.png\t1\r\nimg/sub/2.png 0\r\n")
    put("packed", "two.txt", packed(imgs))
    put("trial_h5", "finished.txt", trial())
    put("trial_h5", "authors.txt", trial(authors=True, extra_pred=False))
    # The published CSV: its header and the first rows of analysis/published.csv.
    with open(os.path.join(ROOT, "analysis", "published.csv"), "rb") as f:
        lines = f.read().split(b"\n")
    put("published", "head.csv", b"\n".join(lines[:6]) + b"\n")
    put("published", "quoted.csv",
        'source,table,method,category,dataset,metric,value,protocol_note\n'
        '"a ""b""",t,"m\nx",prompt,cifar100,avg_acc,1e2,""\r\n'
        's,t,m2,safe,cub200,forgetting,-0.5,n\n')


if __name__ == "__main__":
    main()
