"""rp_ref.py: the random-projection ridge classifier (RanPAC phase 2, SAFE's heads) against a
NumPy re-implementation of the reference algorithm (RanPAC `replace_fc` / SAFE c.5-c.6):

  per session t: H = ReLU(X_t W_rand); G += H^T H; Q += H^T onehot(y, C);
  lambda = argmin over 10^lo..10^hi of the mse on the last 20% of H in loader order, fitted on
  the first 80%; W_o = ((G + lambda I)^-1 Q)^T[:seen]; logits = ReLU(X W_rand) W_o^T.

W_rand and the loader orders are taken from the C run (they come from the counter-based RNG);
everything else is recomputed in float64. Checks: lambda per session identical, logits within
1e-4 relative to the largest logit, predictions identical. Exits non-zero on failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    a = ap.parse_args()
    failures = []
    n, d, m, c, S, lo, hi, seed = 240, 16, 300, 12, 3, -4, 6, 77
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(c, d))
    y = rng.integers(0, c, size=n).astype(np.int32)
    x = (centers[y] + 1.2 * rng.normal(size=(n, d))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        x.tofile(os.path.join(tmp, "x.f32"))
        y.tofile(os.path.join(tmp, "y.i32"))
        p = subprocess.run([a.driver, tmp] + [str(v) for v in (n, d, m, c, S, lo, hi, seed)],
                           capture_output=True, text=True)
        if p.returncode:
            print(p.stderr)
            sys.exit(1)
        w = np.fromfile(os.path.join(tmp, "w_rand.f32"), dtype=np.float32).reshape(d, m)
        got_l = np.fromfile(os.path.join(tmp, "lambda.f64"))
        print("W_rand mean %.4f std %.4f (N(0,1) expected)" % (w.mean(), w.std()))
        if abs(w.mean()) > 0.05 or abs(w.std() - 1) > 0.05:
            failures.append("W_rand is not N(0, 1)")
        lambdas = [10.0 ** e for e in range(lo, hi + 1)]
        G, Q = np.zeros((m, m)), np.zeros((m, c))
        H_all = np.maximum(x.astype(np.float64) @ w.astype(np.float64), 0)
        for t in range(S):
            lo_c, hi_c = t * c // S, (t + 1) * c // S
            sel = np.nonzero((y >= lo_c) & (y < hi_c))[0]
            H, Y = H_all[sel], np.eye(c)[y[sel]]
            G += H.T @ H
            Q += H.T @ Y
            order = np.fromfile(os.path.join(tmp, "order_%d.i64" % t), dtype=np.int64)
            Hs, Ys = H[order], Y[order]
            k = int(0.8 * len(sel))
            mse = [np.mean((Hs[k:] @ np.linalg.solve(Hs[:k].T @ Hs[:k] + lam * np.eye(m), Hs[:k].T @ Ys[:k]) - Ys[k:]) ** 2)
                   for lam in lambdas]
            lam = lambdas[int(np.argmin(mse))]
            Wo = np.linalg.solve(G + lam * np.eye(m), Q).T[:hi_c]
            ref = H_all @ Wo.T
            got = np.fromfile(os.path.join(tmp, "logits_%d.f32" % t), dtype=np.float32).reshape(n, hi_c)
            err = np.abs(got - ref).max() / np.abs(ref).max()
            same_pred = np.array_equal(got.argmax(1), ref.argmax(1))
            print("session %d: lambda C %g / NumPy %g, logits max rel err %.3g, predictions %s"
                  % (t + 1, got_l[t], lam, err, "identical" if same_pred else "DIFFER"))
            if got_l[t] != lam:
                failures.append("session %d lambda" % (t + 1))
            if err > 1e-4:
                failures.append("session %d logits" % (t + 1))
            if not same_pred:
                failures.append("session %d predictions" % (t + 1))
    if failures:
        print("rp_ref: FAILED: %s" % ", ".join(failures))
        sys.exit(1)
    print("rp_ref: all checks passed")


if __name__ == "__main__":
    main()
