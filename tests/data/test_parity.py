#!/usr/bin/python3
"""Parity of safecl's image decoding and transforms with PIL 9.4 / torchvision 0.14.

Run with the system interpreter (it has PIL, numpy, torchvision):
    /usr/bin/python3 test_parity.py --tool build/tests/data/data_tool --workdir /tmp/parity

Every input is generated here from a fixed seed (docs/conventions.md 14): noise, gradients and edges, so
that clipping, rounding and filter tails are all exercised. Sections:
  resize     data_resize (bicubic, bilinear) vs PIL Image.resize at torchvision's size
  transform  data_test_transform vs torchvision Resize(bicubic) + CenterCrop + ToTensor
             (+ Normalize)
  jpeg       io_image_read vs PIL open + convert("RGB") on JPEGs PIL wrote (4:2:0, 4:2:2, 4:4:4,
             progressive, grayscale, CMYK, odd sizes)
  png        io_image_read vs PIL on PNGs written by a small encoder below (every colour type and
             bit depth, tRNS, Adam7 interlace), and PNGs written by io_image_write_png
Reports % identical values, the worst difference and where; exits 1 when a resize case is
below 99.9 % identical or anything else differs beyond its stated tolerance."""
import argparse
import os
import warnings
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image
import torch
import torchvision.transforms as T
from torchvision.transforms.functional import _compute_resized_output_size

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


def raw_write(path, a):
    h, w, _ = a.shape
    with open(path, "wb") as f:
        f.write(struct.pack("<II", w, h) + np.ascontiguousarray(a).tobytes())


def raw_read(path):
    b = open(path, "rb").read()
    w, h = struct.unpack("<II", b[:8])
    return np.frombuffer(b[8:], np.uint8).reshape(h, w, 3)


def tool(args, *cmd, expect_ok=True):
    r = subprocess.run([args.tool] + [str(c) for c in cmd], capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        raise RuntimeError("data_tool %s failed:\n%s" % (" ".join(map(str, cmd)), r.stderr))
    return r


def test_image(rng, w, h):
    """Noise on the left, smooth gradient in the middle, hard edges on the right."""
    a = rng.integers(0, 256, (h, w, 3)).astype(np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    grad = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1),
                     127.5 + 127.5 * np.sin(xx / 7.0 + yy / 5.0)], -1)
    edges = np.where(((xx // 5 + yy // 3) % 2)[..., None] == 0, 255.0, 0.0).repeat(3, -1)
    third = max(w // 3, 1)
    a[:, third:2 * third] = grad[:, third:2 * third]
    a[:, 2 * third:] = edges[:, 2 * third:]
    return a.astype(np.uint8)


def compare_u8(name, got, want, min_identical):
    if got.shape != want.shape:
        fail("%s: shape %s, PIL %s" % (name, got.shape, want.shape))
        return
    d = np.abs(got.astype(np.int32) - want.astype(np.int32))
    ident = 100.0 * float((d == 0).mean())
    loc = np.unravel_index(int(d.argmax()), d.shape)
    print("  %-46s identical %8.4f %%  worst %3d at (y=%d, x=%d, c=%d)" %
          (name, ident, d.max(), loc[0], loc[1], loc[2]))
    if ident < min_identical:
        fail("%s: %.4f %% identical < %.1f %%" % (name, ident, min_identical))
    return ident


def section_resize(args, rng):
    print("resize: data_resize vs PIL Image.resize (torchvision output size)")
    # (w, h, shorter side S): upscale, downscale, odd, extreme aspect, one axis unchanged
    cases = [(32, 32, 224), (500, 375, 256), (375, 500, 256), (64, 48, 32), (64, 48, 100),
             (1000, 10, 256), (10, 1000, 5), (300, 300, 224), (333, 211, 256), (224, 300, 224),
             (257, 256, 256), (31, 17, 9), (17, 31, 113), (640, 427, 256), (1, 50, 3)]
    totals = {}
    for w, h, s in cases:
        img = test_image(rng, w, h)
        nh, nw = _compute_resized_output_size((h, w), [s])
        raw_write(os.path.join(args.workdir, "in.raw"), img)
        for fname, pf in (("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)):
            out = os.path.join(args.workdir, "out.raw")
            tool(args, "resize", fname, os.path.join(args.workdir, "in.raw"), nw, nh, out)
            want = np.asarray(Image.fromarray(img).resize((nw, nh), pf))
            ident = compare_u8("%s %dx%d -> %dx%d" % (fname, w, h, nw, nh), raw_read(out), want,
                               99.9)
            t = totals.setdefault(fname, [0.0, 0])
            t[0] += (ident or 0) * want.size
            t[1] += want.size
    # RandomResizedCrop's use: a crop box resized to 224 x 224 without keeping the aspect.
    big = test_image(rng, 500, 375)
    for k in range(4):
        cw, ch = int(rng.integers(20, 500)), int(rng.integers(20, 375))
        x0, y0 = int(rng.integers(0, 500 - cw + 1)), int(rng.integers(0, 375 - ch + 1))
        crop = big[y0:y0 + ch, x0:x0 + cw]
        raw_write(os.path.join(args.workdir, "in.raw"), crop)
        out = os.path.join(args.workdir, "out.raw")
        tool(args, "resize", "bilinear", os.path.join(args.workdir, "in.raw"), 224, 224, out)
        want = np.asarray(Image.fromarray(big).crop((x0, y0, x0 + cw, y0 + ch))
                          .resize((224, 224), Image.BILINEAR))
        ident = compare_u8("bilinear crop %dx%d -> 224x224" % (cw, ch), raw_read(out), want, 99.9)
        t = totals["bilinear"]
        t[0] += (ident or 0) * want.size
        t[1] += want.size
    for fname, (acc, n) in totals.items():
        print("  overall %s: %.4f %% of %d values identical" % (fname, acc / n, n))


def section_transform(args, rng):
    print("transform: data_test_transform vs torchvision Resize(bicubic)+CenterCrop+ToTensor")
    cases = [(500, 375, 256, 224), (375, 500, 256, 224), (32, 32, 224, 224), (32, 32, 32, 32),
             (333, 211, 256, 224), (257, 300, 256, 224), (100, 60, 200, 224), (50, 40, 0, 64),
             (224, 224, 224, 224)]
    for w, h, s, c in cases:
        img = test_image(rng, w, h)
        for norm in (False, True):
            if norm and (w, h) != (500, 375):
                continue
            steps = [T.Resize(s, interpolation=T.InterpolationMode.BICUBIC)] if s > 0 else []
            steps += [T.CenterCrop(c), T.ToTensor()]
            mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
            extra = []
            if norm:
                steps.append(T.Normalize(mean, std))
                extra = ["%.9g" % v for v in mean + std]
            want = T.Compose(steps)(Image.fromarray(img)).numpy()
            raw_write(os.path.join(args.workdir, "in.raw"), img)
            out = os.path.join(args.workdir, "out.f32")
            tool(args, "transform", os.path.join(args.workdir, "in.raw"), s, c, out, *extra)
            got = np.fromfile(out, np.float32).reshape(want.shape)
            d = np.abs(got.astype(np.float64) - want.astype(np.float64))
            loc = np.unravel_index(int(d.argmax()), d.shape)
            name = "%dx%d resize %d crop %d%s" % (w, h, s, c, " +normalize" if norm else "")
            print("  %-46s max abs diff %.3g at (c=%d, y=%d, x=%d), bit-identical %.4f %%" %
                  (name, d.max(), loc[0], loc[1], loc[2], 100.0 * float((d == 0).mean())))
            if d.max() > 0:
                fail("transform %s: max abs diff %g" % (name, d.max()))


def section_jpeg(args, rng):
    print("jpeg: io_image_read vs PIL open().convert('RGB') (same libjpeg-turbo)")
    img = test_image(rng, 203, 157)
    variants = [
        ("rgb q90 4:2:0", "RGB", dict(quality=90)),
        ("rgb q75 4:2:2", "RGB", dict(quality=75, subsampling=1)),
        ("rgb q95 4:4:4", "RGB", dict(quality=95, subsampling=0)),
        ("rgb progressive", "RGB", dict(quality=85, progressive=True)),
        ("rgb optimized q50", "RGB", dict(quality=50, optimize=True)),
        ("grayscale", "L", dict(quality=90)),
        ("cmyk (adobe)", "CMYK", dict(quality=90)),
    ]
    for name, mode, kw in variants:
        for w, h in ((203, 157), (33, 17), (1, 1)):
            path = os.path.join(args.workdir, "j_%s_%dx%d.jpg" % (name.replace(" ", "_").replace(
                ":", ""), w, h))
            src = Image.fromarray(np.ascontiguousarray(img[:h, :w])).convert(mode)
            src.save(path, "JPEG", **kw)
            want = np.asarray(Image.open(path).convert("RGB"))
            out = os.path.join(args.workdir, "out.raw")
            tool(args, "decode", path, out)
            compare_u8("%s %dx%d" % (name, w, h), raw_read(out), want, 100.0)


def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(
        ">I", zlib.crc32(tag + data) & 0xffffffff)


def png_rows(samples, depth):
    """Packs an (h, w, channels) integer array into filter-0 scanlines."""
    h, w, ch = samples.shape
    rows = []
    for y in range(h):
        v = samples[y].reshape(-1)
        if depth == 16:
            b = v.astype(">u2").tobytes()
        elif depth == 8:
            b = v.astype(np.uint8).tobytes()
        else:
            b = np.packbits(np.unpackbits(v.astype(np.uint8)[:, None], axis=1)[:, 8 - depth:]
                            .reshape(-1)).tobytes()
        rows.append(b"\0" + b)
    return b"".join(rows)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png_encode(samples, depth, ctype, palette=None, trns=None, interlace=False):
    h, w, _ = samples.shape
    head = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0)
    if interlace:
        data = b"".join(png_rows(samples[y0::dy, x0::dx], depth) for x0, y0, dx, dy in ADAM7
                        if samples[y0::dy, x0::dx].size)
    else:
        data = png_rows(samples, depth)
    body = png_chunk(b"IHDR", head)
    if palette is not None:
        body += png_chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if trns is not None:
        body += png_chunk(b"tRNS", trns)
    body += png_chunk(b"IDAT", zlib.compress(data, 6)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def section_png(args, rng):
    print("png: io_image_read vs PIL open().convert('RGB')")
    w, h = 37, 23
    cases = []
    for depth in (1, 2, 4, 8, 16):
        cases.append(("gray %d-bit" % depth, 0, depth, 1, None, None))
    cases.append(("gray 8-bit tRNS", 0, 8, 1, None, struct.pack(">H", 7)))
    cases.append(("gray 16-bit tRNS", 0, 16, 1, None, struct.pack(">H", 300)))
    cases.append(("gray 2-bit tRNS", 0, 2, 1, None, struct.pack(">H", 1)))
    cases.append(("rgb 8-bit tRNS", 2, 8, 3, None, struct.pack(">HHH", 1, 2, 3)))
    for depth in (8, 16):
        cases.append(("rgb %d-bit" % depth, 2, depth, 3, None, None))
        cases.append(("gray+alpha %d-bit" % depth, 4, depth, 2, None, None))
        cases.append(("rgba %d-bit" % depth, 6, depth, 4, None, None))
    for depth in (1, 2, 4, 8):
        cases.append(("palette %d-bit" % depth, 3, depth, 1, True, None))
    cases.append(("palette 8-bit tRNS", 3, 8, 1, True, bytes(range(0, 250, 10))))
    cases.append(("palette 4-bit tRNS", 3, 4, 1, True, bytes([0, 128])))
    for name, ctype, depth, ch, pal, trns in cases:
        for interlace in (False, True):
            top = (1 << depth) - 1
            samples = rng.integers(0, top + 1, (h, w, ch))
            if depth == 16 and ctype == 0:  # many values near 0..300 to exercise PIL's clip
                samples = np.where(rng.random((h, w, ch)) < 0.5, samples % 400, samples)
            palette = rng.integers(0, 256, (1 << depth, 3)) if pal else None
            path = os.path.join(args.workdir, "p_%s%s.png" % (name.replace(" ", "_").replace(
                "+", "_"), "_i" if interlace else ""))
            with open(path, "wb") as f:
                f.write(png_encode(samples, depth, ctype, palette, trns, interlace))
            want = np.asarray(Image.open(path).convert("RGB"))
            out = os.path.join(args.workdir, "out.raw")
            tool(args, "decode", path, out)
            compare_u8("%s%s" % (name, " interlaced" if interlace else ""), raw_read(out), want,
                       100.0)
    img = test_image(rng, 61, 29)
    raw_write(os.path.join(args.workdir, "in.raw"), img)
    path = os.path.join(args.workdir, "written.png")
    tool(args, "writepng", os.path.join(args.workdir, "in.raw"), path)
    compare_u8("io_image_write_png read back by PIL", np.asarray(Image.open(path).convert("RGB")),
               img, 100.0)


def section_errors(args):
    print("errors: the decoder refuses bad files and names them")
    good = os.path.join(args.workdir, "j_rgb_q90_4:2:0_203x157.jpg".replace(":", ""))
    data = open(good, "rb").read()
    bad = {"truncated.jpg": data[: len(data) // 2], "garbage.png": b"\x89PNG\r\n\x1a\n" + bytes(
        rng_bytes(200)), "text.jpg": b"hello, not an image\n", "empty.png": b""}
    for name, content in bad.items():
        path = os.path.join(args.workdir, name)
        with open(path, "wb") as f:
            f.write(content)
        r = tool(args, "decode", path, os.path.join(args.workdir, "out.raw"), expect_ok=False)
        msg = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
        print("  %-14s exit %d: %s" % (name, r.returncode, msg))
        if r.returncode == 0 or path not in msg:
            fail("%s: expected a failure naming the path, got exit %d: %s" % (name, r.returncode,
                                                                               msg))
        try:
            Image.open(path).convert("RGB")
            fail("%s: PIL accepted it, safecl refused it" % name)
        except Exception:  # noqa: BLE001 - any PIL error means PIL refuses it too
            pass


def rng_bytes(n):
    return np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    rng = np.random.default_rng(1993)
    sections = [("resize", lambda: section_resize(args, rng)),
                ("transform", lambda: section_transform(args, rng)),
                ("jpeg", lambda: section_jpeg(args, rng)), ("png", lambda: section_png(args, rng)),
                ("errors", lambda: section_errors(args))]
    for name, fn in sections:
        if not args.only or name in args.only.split(","):
            fn()
    if FAILURES:
        print("%d parity failure(s)" % len(FAILURES))
        return 1
    print("all parity checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
