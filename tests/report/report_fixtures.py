"""report_fixtures.py: run directories with known numbers for the `safecl report` tests.

Writes trial.h5 files the way src/run/trial_output.c does (schema 1: root attributes, the
`config` text, /predictors/<name>/{acc_matrix, acc, correct, val_acc} with per-predictor
attributes), plus failed.txt, trial.cfg and ckpt.h5 for trials without results, following the
conventions in analysis/SCHEMA.md. The numbers are chosen so that every mean, std and
interval in the expected tables can be checked by hand; they are listed in make_all's
docstring. Each accuracy curve over T = 3 sessions is [2A - F, A, F], whose last value is the
final accuracy F and whose mean is the average incremental accuracy A.
"""
import os

import h5py
import numpy as np

NAN = float("nan")


def config_text(dataset, method, seed, run_dir, extra=(), val=False, order_seed=-1, shuffle=True):
    """The effective config as cfg_dump prints it (a subset of the keys)."""
    lines = ['dataset.name = "%s";' % dataset,
             "dataset.shuffle = %s;" % ("true" if shuffle else "false"),
             "dataset.order_seed = %d;" % order_seed,
             'backbone.arch = "vit_base_patch16_224";',
             'method.name = "%s";' % method]
    lines += list(extra)
    lines += ["eval.batch = 32;",
              "eval.val_fraction = %s;" % ("0.10000000000000001" if val else "0.0"),
              "threads = 0;",
              "seed = %d;" % seed,
              'run.dir = "%s";' % run_dir]
    return "\n".join(lines) + "\n"


def class_order(seed, order_seed=-1, shuffle=True, n=30):
    """The class order safecl records (docs/methods.md a.2): NumPy's legacy permutation at the
    trial seed, or at order_seed when it is pinned (>= 0); the label order without shuffling."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    rs = np.random.RandomState(order_seed if order_seed >= 0 else seed)
    return rs.permutation(n).astype(np.int64)


def write_trial(path, dataset, method, category, seed, preds, val=NAN, extra=(),
                status="finished", schema=1, trial_id=None, T=3, order_seed=-1, shuffle=True):
    """preds: [(name, final, avg, forgetting)], the primary predictor first. The class order
    follows the seed unless order_seed pins it; shuffle=False keeps the label order."""
    os.makedirs(path, exist_ok=True)
    with h5py.File(os.path.join(path, "trial.h5"), "w") as f:
        if schema is not None:
            f.attrs["schema_version"] = np.int64(schema)
        f.attrs["kind"] = "trial"
        f.attrs["trial_id"] = trial_id or "id-" + os.path.basename(path)
        f.attrs["status"] = status
        f.attrs["config"] = config_text(dataset, method, seed, path, extra, val == val, order_seed,
                                        shuffle)
        f.attrs["method"] = method
        f.attrs["method_category"] = category
        f.attrs["dataset"] = dataset
        f.attrs["protocol"] = "class-incremental"
        f.attrs["n_sessions"] = np.int64(T)
        f.attrs["n_classes"] = np.int64(30)
        f.attrs["seed"] = np.int64(seed)
        f.attrs["primary_predictor"] = preds[0][0]
        f.create_dataset("class_order", data=class_order(seed, order_seed, shuffle))
        f.create_dataset("n_test", data=np.full(T, 100, dtype=np.int64))
        for k, (name, final, avg, forget) in enumerate(preds):
            acc = np.array([2 * avg - final, avg, final], dtype=np.float64)[:T]
            if name == "authors_protocol":  # as run/trial_output.c writes SAFE's diagnostic
                f["diagnostics/authors_protocol_acc"] = acc
                f["diagnostics"].attrs["authors_protocol_final"] = np.float64(final)
                f["diagnostics"].attrs["authors_protocol_avg"] = np.float64(avg)
                continue
            g = f.create_group("predictors/" + name)
            mat = np.full((T, T), np.nan)
            for t in range(T):
                mat[t, :t + 1] = acc[t]
            g["acc_matrix"] = mat
            g["acc"] = acc
            g["correct"] = np.round(acc).astype(np.int64)
            g["val_acc"] = np.full(T, val)
            for key, v in (("final_acc", final), ("avg_acc", avg), ("forgetting", forget),
                           ("val_acc", val)):
                g.attrs[key] = np.float64(v)
                if k == 0:
                    f.attrs[key] = np.float64(v)


def write_failed(path, text):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "failed.txt"), "w") as f:
        f.write(text)


def write_unfinished(path, config, sessions_done):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "trial.cfg"), "w") as f:
        f.write(config)
    with h5py.File(os.path.join(path, "ckpt.h5"), "w") as f:
        f.attrs["schema_version"] = np.int64(1)
        f.attrs["kind"] = "checkpoint"
        f.attrs["sessions_done"] = np.int64(sessions_done)


def make_sweep(root):
    """runA: a sweep directory (RUN_DIR/trials/<id>/)."""
    t = lambda name: os.path.join(root, "trials", name)
    os.makedirs(os.path.join(root, "trials"))
    # IN-R: SimpleCIL 60/62/64 (avg 70/71/72), no validation split.
    for s, fin, avg, fg in ((1, 60, 70, 10), (2, 62, 71, 12), (3, 64, 72, 14)):
        write_trial(t("inr_simplecil_%d" % s), "imagenet-r", "simplecil", "representation", s,
                    [("simplecil", fin, avg, fg)], trial_id="id-inr-simplecil-%d" % s)
    # IN-R: RanPAC at two points; dim 512 wins on validation (82 > 81) although dim 1024 has
    # the higher test accuracy; dim 1024 seed 2 stopped (failed), seed 3 missing.
    dim512 = ("method.rp.dim = 512;",)
    dim1024 = ("method.rp.dim = 1024;",)
    for s, fin, val in ((1, 70, 80), (2, 71, 82), (3, 75, 84)):
        write_trial(t("inr_ranpac512_%d" % s), "imagenet-r", "ranpac", "representation", s,
                    [("ranpac", fin, 80, 5)], val=val, extra=dim512)
    write_trial(t("inr_ranpac1024_1"), "imagenet-r", "ranpac", "representation", 1,
                [("ranpac", 99, 99, 1)], val=81, extra=dim1024)
    write_trial(t("inr_ranpac1024_2"), "imagenet-r", "ranpac", "representation", 2,
                [("ranpac", 98, 98, 1)], val=90, extra=dim1024, status="stopped")
    # IN-R: L2P seeds 1, 2 finished, seed 3 failed (failed.txt with config and error).
    for s, fin, avg, fg in ((1, 50, 55, 20), (2, 52, 57, 22)):
        write_trial(t("inr_l2p_%d" % s), "imagenet-r", "l2p", "prompt", s, [("l2p", fin, avg, fg)])
    write_failed(t("inr_l2p_3"), 'error = "NaN loss at session 2, epoch 3";\n'
                 + config_text("imagenet-r", "l2p", 3, t("inr_l2p_3")))
    # IN-R: SAFE seeds 1, 2 (seed 3 missing), with slow, fast and the diagnostic.
    for s, safe, slow, fast, auth in ((1, 80, 75, 78, 81), (2, 83, 75, 80, 83)):
        write_trial(t("inr_safe_%d" % s), "imagenet-r", "safe", "safe", s,
                    [("safe", safe, 79, 4), ("authors_protocol", auth, 81, 3),
                     ("fast", fast, 78, 6), ("slow", slow, 77, 2)])
    # CIFAR-100: a tie on final accuracy (70.00 for both); the class order pinned at 1993.
    for s in (1, 2, 3):
        write_trial(t("cifar_simplecil_%d" % s), "cifar100", "simplecil", "representation", s,
                    [("simplecil", 70, 75, 8)], order_seed=1993)
        write_trial(t("cifar_l2p_%d" % s), "cifar100", "l2p", "prompt", s,
                    [("l2p", 68 + s, 75 + s, 8 + s)], order_seed=1993)
    # CUB-200: SimpleCIL seed 1 finished, seed 2 unfinished (checkpoint after session 2).
    write_trial(t("cub_simplecil_1"), "cub200", "simplecil", "representation", 1,
                [("simplecil", 40, 45, 3)])
    write_unfinished(t("cub_simplecil_2"),
                     config_text("cub200", "simplecil", 2, t("cub_simplecil_2")), 2)
    # Trials that cannot be placed, and a duplicate of inr_simplecil_1.
    write_failed(t("zz_broken"), "out of memory\n")
    os.makedirs(t("zzz_empty"))
    write_trial(t("zzzz_copy"), "imagenet-r", "simplecil", "representation", 1,
                [("simplecil", 60, 70, 10)], trial_id="id-inr-simplecil-1")


def make_refused(root):
    """runB: two RanPAC points on VTAB (not shuffled) without a validation split: refused; two
    L2P points that both failed: no number, both failures counted."""
    for dim in (512, 1024):
        write_trial(os.path.join(root, "trials", "vtab_ranpac%d" % dim), "vtab", "ranpac",
                    "representation", 1, [("ranpac", 90, 91, 1)],
                    extra=("method.rp.dim = %d;" % dim,), shuffle=False)
    for pool in (10, 20):
        path = os.path.join(root, "trials", "vtab_l2p%d" % pool)
        write_failed(path, config_text("vtab", "l2p", 1, path, ("method.l2p.pool = %d;" % pool,),
                                       shuffle=False)
                     + 'error = "out of GPU memory";\n')


def make_single(root):
    """runC: a `safecl train` run.dir (DIR/trial.h5)."""
    write_trial(root, "vtab", "simplecil", "representation", 1, [("simplecil", 50, 60, 5)],
                shuffle=False)


def make_orders(root):
    """runD: class orders over seeds 1 and 2 (SimpleCIL 50, 52), for the class-order note:
    VTAB not shuffled; IN-A pinned at 1993 for RanPAC but following the seed for SimpleCIL;
    OmniBenchmark pinned at 7; CUB-200 follows the seed; IN-R one seed only (not named)."""
    t = lambda name: os.path.join(root, "trials", name)
    for s in (1, 2):
        one = [("simplecil", 48 + 2 * s, 60, 5)]
        write_trial(t("vtab_%d" % s), "vtab", "simplecil", "representation", s, one, shuffle=False)
        write_trial(t("ina_simplecil_%d" % s), "imagenet-a", "simplecil", "representation", s, one)
        write_trial(t("ina_ranpac_%d" % s), "imagenet-a", "ranpac", "representation", s,
                    [("ranpac", 60, 70, 5)], order_seed=1993)
        write_trial(t("omni_%d" % s), "omnibenchmark", "simplecil", "representation", s, one,
                    order_seed=7)
        write_trial(t("cub_%d" % s), "cub200", "simplecil", "representation", s, one)
    write_trial(t("inr_1"), "imagenet-r", "simplecil", "representation", 1,
                [("simplecil", 50, 60, 5)])


def make_prompt(root):
    """runP: the prompt family on CIFAR-100, seeds 1 and 2: L2P 71/72 final with its pilot_diag
    diagnostic 81/82 (above every own row, never ranked), DualPrompt 73/74, CODA-Prompt 75/76."""
    t = lambda name: os.path.join(root, "trials", name)
    for s in (1, 2):
        write_trial(t("l2p_%d" % s), "cifar100", "l2p", "prompt", s,
                    [("l2p", 70 + s, 75, 5), ("pilot_diag", 80 + s, 85, 4)])
        write_trial(t("dualprompt_%d" % s), "cifar100", "dualprompt", "prompt", s,
                    [("dualprompt", 72 + s, 76, 5)])
        write_trial(t("coda_%d" % s), "cifar100", "coda_prompt", "prompt", s,
                    [("coda_prompt", 74 + s, 77, 5)])


def make_mixture(root):
    """runM: one method per family on CIFAR-100, seeds 1 and 2: SimpleCIL 60/61 and SLCA 80/81
    (representation), EASE 85/86 and LAE 82/83 (model mixture), SAFE 84/85; plus EASE on
    IN-R seed 1 as a failed trial whose file holds no category (failed.txt: its config lines and
    the error), placed by the method's name alone."""
    t = lambda name: os.path.join(root, "trials", name)
    for s in (1, 2):
        write_trial(t("simplecil_%d" % s), "cifar100", "simplecil", "representation", s,
                    [("simplecil", 59 + s, 70, 5)])
        write_trial(t("slca_%d" % s), "cifar100", "slca", "representation", s,
                    [("slca", 79 + s, 88, 3)])
        write_trial(t("ease_%d" % s), "cifar100", "ease", "mixture", s, [("ease", 84 + s, 90, 2)])
        write_trial(t("lae_%d" % s), "cifar100", "lae", "mixture", s, [("lae", 81 + s, 89, 4)])
        write_trial(t("safe_%d" % s), "cifar100", "safe", "safe", s,
                    [("safe", 83 + s, 89, 2), ("slow", 80, 88, 2), ("fast", 82, 88, 2)])
    path = t("ease_inr_1")
    write_failed(path, 'error = "killed by the scheduler";\n' + config_text("imagenet-r", "ease", 1,
                                                                             path))


PUBLISHED = (
    "source,table,method,category,dataset,metric,value,protocol_note\n"
    '"Source A, 2023",Table 2,RanPAC,representation,imagenet-r,final_acc,77.9,'
    '"mean of per-task accuracies, not ""overall"" accuracy; 100% of sessions_used"\n'
    '"Source A, 2023",Table 2,NCM with Phase 1,representation,imagenet-r,final_acc,70.1,'
    "prototypes after first-session tuning\n"
    "Source B,Table 1,L2P,prompt,cifar100,final_acc,83.83,10 sessions\n"
    "Source B,Table 1,L2P,prompt,cifar100,avg_acc,88.48,10 sessions\n"
    "Source C,Table 1,SAFE,safe,domainnet,final_acc,67.82,no DomainNet column: not shown\n")


def make_all(tmp):
    """Creates runA, runB, runC, runD, runP, runM and published.csv under tmp.

    Hand-checkable numbers (mean +- sample std, n):
      IN-R final: SimpleCIL 62 +- 2 (3); RanPAC (dim 512) 72 +- sqrt(7) = 2.65 (3);
                  L2P 51 +- sqrt(2) = 1.41 (2); SAFE 81.5 +- sqrt(4.5) = 2.12 (2),
                  slow 75 +- 0, fast 79 +- 1.41, authors' protocol 82 +- 1.41 (never ranked)
      paired vs SimpleCIL (t(0.975, 2) = 4.303, t(0.975, 1) = 12.706):
        RanPAC 10, 9, 11 -> +10.00 [7.52, 12.48] (3); SAFE 20, 21 -> +20.50 [14.15, 26.85] (2)
        slow 15, 13 -> +14.00 [1.29, 26.71]; L2P on CIFAR -1, 0, 1 -> 0.00 [-2.48, 2.48]
      CIFAR-100 final: SimpleCIL 70 +- 0 and L2P 70 +- 1: a tie, both bold.
    """
    make_sweep(os.path.join(tmp, "runA"))
    make_refused(os.path.join(tmp, "runB"))
    make_single(os.path.join(tmp, "runC"))
    make_orders(os.path.join(tmp, "runD"))
    make_prompt(os.path.join(tmp, "runP"))
    make_mixture(os.path.join(tmp, "runM"))
    with open(os.path.join(tmp, "published.csv"), "w") as f:
        f.write(PUBLISHED)
