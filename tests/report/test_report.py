"""test_report.py: `safecl report` on generated run directories with known numbers.

The run directories come from report_fixtures.py (h5py; the numbers and their hand-checked
means, stds and intervals are in make_all's docstring). Checks, each printing ok/FAIL:
1. The exact Markdown, LaTeX and CSV text (with --published and --baseline; CSV also
   --forgetting): grouping, best marks (a tie included), failed / unfinished / missing /
   duplicate trials, the hyperparameter point chosen on validation (not on test) and the one
   refused without validation, published rows with escaping in each format; the note that says
   per dataset whether its seeds varied the class order (varies, pinned, not shuffled, mixed).
2. The SVG plots parse as XML and hold one curve per plotted row; --out writes the same bytes
   as stdout, and a rerun prints identical text.
3. Trial files of another schema version (newer, older, none) are rejected with the hint;
   bad directories, an unknown baseline, a malformed published CSV and bad options fail with a
   message (exit 1, or 2 for usage).
4. The shipped analysis/published.csv loads and its RanPAC rows appear marked as reported;
   the prompt-based section (runP: L2P with its pilot_diag diagnostic, DualPrompt, CODA-Prompt)
   lists the three methods, the diagnostic never ranked and explained, published rows after them;
   the model-mixture section (runM: EASE, LAE) sits between the representation-based section and
   SAFE's, with the published SLCA, EASE and MOS rows and their notes, in every format;
   analysis/load_results.py reads the run directories; real `safecl train` trial files report.
Exits non-zero on any failure.
"""
import argparse
import csv
import math
import difflib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_fixtures  # noqa: E402

failures = []


def check(cond, msg, detail=""):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        if detail:
            print("     " + detail.strip().replace("\n", "\n     "))
        failures.append(msg)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def same_text(name, got, want):
    if got == want:
        check(True, name + ": exact expected text")
        return
    sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                               "expected", "got"))
    check(False, name + ": exact expected text (diff above)")


EXPECTED_MD = r"""# safecl report

Run directories: `runA`, `runB`, `runC`. Trials: 21 finished, 5 failed, 2 unfinished, 2 missing, 1 duplicate ignored.

## Accuracy (%)

Final accuracy, average incremental accuracy: mean ± std over seeds, (n) finished seeds, of the configuration chosen on the validation split; bold: best of this project's runs per column. Rows marked reported are published numbers, not re-run (sources in the notes).

| Method | CIFAR-100 final | CIFAR-100 avg | IN-R final | IN-R avg | CUB-200 final | CUB-200 avg | VTAB final | VTAB avg |
| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| *Prompt-based* | | | | | | | | |
| L2P | **70.00 ± 1.00** (3) | **77.00 ± 1.00** (3) | 51.00 ± 1.41 (2; 1 failed) | 56.00 ± 1.41 (2; 1 failed) | — | — | — (0; 2 failed) | — (0; 2 failed) |
| L2P (reported [1]) | 83.83 | 88.48 | — | — | — | — | — | — |
| *Representation-based* | | | | | | | | |
| SimpleCIL | **70.00 ± 0.00** (3) | 75.00 ± 0.00 (3) | 62.00 ± 2.00 (3) | 71.00 ± 1.00 (3) | 40.00 (1; 1 unfinished) | 45.00 (1; 1 unfinished) | 50.00 (1) | 60.00 (1) |
| RanPAC | — | — | 72.00 ± 2.65 (3) | **80.00 ± 0.00** (3) | — | — | not chosen (2 points) | not chosen (2 points) |
| RanPAC (reported [2]) | — | — | 77.9 | — | — | — | — | — |
| NCM with Phase 1 (reported [2]) | — | — | 70.1 | — | — | — | — | — |
| *SAFE (with its slow and fast learners)* | | | | | | | | |
| SAFE | — | — | **81.50 ± 2.12** (2; 1 missing) | 79.00 ± 0.00 (2; 1 missing) | — | — | — | — |
| SAFE: slow learner | — | — | 75.00 ± 0.00 (2; 1 missing) | 77.00 ± 0.00 (2; 1 missing) | — | — | — | — |
| SAFE: fast learner | — | — | 79.00 ± 1.41 (2; 1 missing) | 78.00 ± 0.00 (2; 1 missing) | — | — | — | — |
| SAFE: authors' protocol | — | — | 82.00 ± 1.41 (2; 1 missing) | 81.00 ± 0.00 (2; 1 missing) | — | — | — | — |

### Notes

- [1] Reported, not re-run: Source B, Table 1. L2P: 10 sessions.
- [2] Reported, not re-run: Source A, 2023, Table 2. RanPAC: mean of per-task accuracies, not "overall" accuracy; 100% of sessions\_used. NCM with Phase 1: prototypes after first-session tuning.
- IN-R / RanPAC: 2 configurations; chosen on mean validation accuracy: `method.rp.dim = 1024` (validation 81.00, 1 seed); `method.rp.dim = 512` (validation 82.00, 3 seeds), chosen.
- VTAB / L2P: 2 configurations; none finished: `method.l2p.pool = 10` (no validation, 0 finished); `method.l2p.pool = 20` (no validation, 0 finished).
- VTAB / RanPAC: 2 configurations; no validation split, so none is chosen (never on the test set): `method.rp.dim = 1024` (no validation, 1 finished); `method.rp.dim = 512` (no validation, 1 finished).
- No validation split (one configuration, used as run, not selected): CIFAR-100 / L2P, CIFAR-100 / SimpleCIL, IN-R / L2P, IN-R / SimpleCIL, IN-R / SAFE, CUB-200 / SimpleCIL, VTAB / SimpleCIL.
- Class order over seeds (the released code draws one per seed, so its published spreads over seeds are over class orders; docs/methods.md a.2): CIFAR-100 pinned (order\_seed = 1993); IN-R varies with seed.
- SAFE: authors' protocol: the released code's max(fast learner, aggregation) per session, chosen with test labels (docs/methods.md d.2); shown to compare with published numbers, never ranked.
- Failed: IN-R / L2P seed 3 (`runA/trials/inr_l2p_3`): NaN loss at session 2, epoch 3
- Failed: IN-R / RanPAC seed 2 `method.rp.dim = 1024` (`runA/trials/inr_ranpac1024_2`): trial.h5 status "stopped"
- Failed: (not placed, no config: `runA/trials/zz_broken`): out of memory
- Failed: VTAB / L2P seed 1 `method.l2p.pool = 10` (`runB/trials/vtab_l2p10`): out of GPU memory
- Failed: VTAB / L2P seed 1 `method.l2p.pool = 20` (`runB/trials/vtab_l2p20`): out of GPU memory
- Unfinished: CUB-200 / SimpleCIL seed 2 (`runA/trials/cub_simplecil_2`): checkpoint after session 2
- Unfinished: (not placed, no config: `runA/trials/zzz_empty`): no results yet
- Missing: IN-R / RanPAC `method.rp.dim = 1024` seed 3: no trial, although other trials of this dataset in the same run directory have this seed.
- Missing: IN-R / SAFE seed 3: no trial, although other trials of this dataset in the same run directory have this seed.
- Ignored: `runA/trials/zzzz_copy` duplicates `runA/trials/inr_simplecil_1` (same trial, or same configuration and seed).

## Paired difference in final accuracy vs SimpleCIL

Row minus baseline in percentage points, over the seeds both finished: mean [95% Student-t interval] (n shared seeds).

| Method | CIFAR-100 | IN-R | CUB-200 | VTAB |
| :--- | ---: | ---: | ---: | ---: |
| *Prompt-based* | | | | |
| L2P | 0.00 [-2.48, 2.48] (3) | -10.00 [-10.00, -10.00] (2) | — | — |
| *Representation-based* | | | | |
| SimpleCIL | baseline | baseline | baseline | baseline |
| RanPAC | — | +10.00 [7.52, 12.48] (3) | — | — |
| *SAFE (with its slow and fast learners)* | | | | |
| SAFE | — | +20.50 [14.15, 26.85] (2) | — | — |
| SAFE: slow learner | — | +14.00 [1.29, 26.71] (2) | — | — |
| SAFE: fast learner | — | +18.00 [18.00, 18.00] (2) | — | — |
| SAFE: authors' protocol | — | +21.00 [21.00, 21.00] (2) | — | — |

"""

EXPECTED_TEX = r"""% Run directories: runA, runB, runC.
% Trials: 21 finished, 5 failed, 2 unfinished, 2 missing, 1 duplicate ignored.
% needs \usepackage{booktabs}
\begin{table}[t]
\centering
\scriptsize
\caption{Final accuracy, average incremental accuracy (\%): mean $\pm$ std over seeds, (n) finished seeds, of the configuration chosen on the validation split; bold: best of this project's runs per column. Rows marked reported are published numbers, not re-run.}
\begin{tabular}{lrrrrrrrr}
\toprule
 & \multicolumn{2}{c}{CIFAR-100} & \multicolumn{2}{c}{IN-R} & \multicolumn{2}{c}{CUB-200} & \multicolumn{2}{c}{VTAB} \\
\cmidrule(lr){2-3} \cmidrule(lr){4-5} \cmidrule(lr){6-7} \cmidrule(lr){8-9}
Method & final & avg & final & avg & final & avg & final & avg \\
\midrule
\multicolumn{9}{l}{\textit{Prompt-based}} \\
L2P & \textbf{70.00 $\pm$ 1.00} (3) & \textbf{77.00 $\pm$ 1.00} (3) & 51.00 $\pm$ 1.41 (2; 1 failed) & 56.00 $\pm$ 1.41 (2; 1 failed) & -- & -- & -- (0; 2 failed) & -- (0; 2 failed) \\
L2P (reported~[1]) & 83.83 & 88.48 & -- & -- & -- & -- & -- & -- \\
\midrule
\multicolumn{9}{l}{\textit{Representation-based}} \\
SimpleCIL & \textbf{70.00 $\pm$ 0.00} (3) & 75.00 $\pm$ 0.00 (3) & 62.00 $\pm$ 2.00 (3) & 71.00 $\pm$ 1.00 (3) & 40.00 (1; 1 unfinished) & 45.00 (1; 1 unfinished) & 50.00 (1) & 60.00 (1) \\
RanPAC & -- & -- & 72.00 $\pm$ 2.65 (3) & \textbf{80.00 $\pm$ 0.00} (3) & -- & -- & not chosen (2 points) & not chosen (2 points) \\
RanPAC (reported~[2]) & -- & -- & 77.9 & -- & -- & -- & -- & -- \\
NCM with Phase 1 (reported~[2]) & -- & -- & 70.1 & -- & -- & -- & -- & -- \\
\midrule
\multicolumn{9}{l}{\textit{SAFE (with its slow and fast learners)}} \\
SAFE & -- & -- & \textbf{81.50 $\pm$ 2.12} (2; 1 missing) & 79.00 $\pm$ 0.00 (2; 1 missing) & -- & -- & -- & -- \\
SAFE: slow learner & -- & -- & 75.00 $\pm$ 0.00 (2; 1 missing) & 77.00 $\pm$ 0.00 (2; 1 missing) & -- & -- & -- & -- \\
SAFE: fast learner & -- & -- & 79.00 $\pm$ 1.41 (2; 1 missing) & 78.00 $\pm$ 0.00 (2; 1 missing) & -- & -- & -- & -- \\
SAFE: authors' protocol & -- & -- & 82.00 $\pm$ 1.41 (2; 1 missing) & 81.00 $\pm$ 0.00 (2; 1 missing) & -- & -- & -- & -- \\
\bottomrule
\end{tabular}

\smallskip
\begin{minipage}{\linewidth}\footnotesize
[1] Reported, not re-run: Source B, Table 1. L2P: 10 sessions.\par
[2] Reported, not re-run: Source A, 2023, Table 2. RanPAC: mean of per-task accuracies, not "overall" accuracy; 100\% of sessions\_used. NCM with Phase 1: prototypes after first-session tuning.\par
IN-R / RanPAC: 2 configurations; chosen on mean validation accuracy: \texttt{method.rp.dim = 1024} (validation 81.00, 1 seed); \texttt{method.rp.dim = 512} (validation 82.00, 3 seeds), chosen.\par
VTAB / L2P: 2 configurations; none finished: \texttt{method.l2p.pool = 10} (no validation, 0 finished); \texttt{method.l2p.pool = 20} (no validation, 0 finished).\par
VTAB / RanPAC: 2 configurations; no validation split, so none is chosen (never on the test set): \texttt{method.rp.dim = 1024} (no validation, 1 finished); \texttt{method.rp.dim = 512} (no validation, 1 finished).\par
No validation split (one configuration, used as run, not selected): CIFAR-100 / L2P, CIFAR-100 / SimpleCIL, IN-R / L2P, IN-R / SimpleCIL, IN-R / SAFE, CUB-200 / SimpleCIL, VTAB / SimpleCIL.\par
Class order over seeds (the released code draws one per seed, so its published spreads over seeds are over class orders; docs/methods.md a.2): CIFAR-100 pinned (order\_seed = 1993); IN-R varies with seed.\par
SAFE: authors' protocol: the released code's max(fast learner, aggregation) per session, chosen with test labels (docs/methods.md d.2); shown to compare with published numbers, never ranked.\par
Failed: IN-R / L2P seed 3 (\texttt{runA/trials/inr\_l2p\_3}): NaN loss at session 2, epoch 3\par
Failed: IN-R / RanPAC seed 2 \texttt{method.rp.dim = 1024} (\texttt{runA/trials/inr\_ranpac1024\_2}): trial.h5 status "stopped"\par
Failed: (not placed, no config: \texttt{runA/trials/zz\_broken}): out of memory\par
Failed: VTAB / L2P seed 1 \texttt{method.l2p.pool = 10} (\texttt{runB/trials/vtab\_l2p10}): out of GPU memory\par
Failed: VTAB / L2P seed 1 \texttt{method.l2p.pool = 20} (\texttt{runB/trials/vtab\_l2p20}): out of GPU memory\par
Unfinished: CUB-200 / SimpleCIL seed 2 (\texttt{runA/trials/cub\_simplecil\_2}): checkpoint after session 2\par
Unfinished: (not placed, no config: \texttt{runA/trials/zzz\_empty}): no results yet\par
Missing: IN-R / RanPAC \texttt{method.rp.dim = 1024} seed 3: no trial, although other trials of this dataset in the same run directory have this seed.\par
Missing: IN-R / SAFE seed 3: no trial, although other trials of this dataset in the same run directory have this seed.\par
Ignored: \texttt{runA/trials/zzzz\_copy} duplicates \texttt{runA/trials/inr\_simplecil\_1} (same trial, or same configuration and seed).\par
\end{minipage}
\end{table}

\begin{table}[t]
\centering
\scriptsize
\caption{Paired difference in final accuracy vs SimpleCIL (percentage points, row minus baseline, over the seeds both finished): mean [95\% Student-t interval] (n shared seeds).}
\begin{tabular}{lrrrr}
\toprule
Method & CIFAR-100 & IN-R & CUB-200 & VTAB \\
\midrule
\multicolumn{5}{l}{\textit{Prompt-based}} \\
L2P & 0.00 [-2.48, 2.48] (3) & -10.00 [-10.00, -10.00] (2) & -- & -- \\
\midrule
\multicolumn{5}{l}{\textit{Representation-based}} \\
SimpleCIL & baseline & baseline & baseline & baseline \\
RanPAC & -- & +10.00 [7.52, 12.48] (3) & -- & -- \\
\midrule
\multicolumn{5}{l}{\textit{SAFE (with its slow and fast learners)}} \\
SAFE & -- & +20.50 [14.15, 26.85] (2) & -- & -- \\
SAFE: slow learner & -- & +14.00 [1.29, 26.71] (2) & -- & -- \\
SAFE: fast learner & -- & +18.00 [18.00, 18.00] (2) & -- & -- \\
SAFE: authors' protocol & -- & +21.00 [21.00, 21.00] (2) & -- & -- \\
\bottomrule
\end{tabular}
\end{table}

"""

EXPECTED_CSV = r'''kind,category,method,predictor,dataset,metric,mean,std,n,n_failed,n_unfinished,n_missing,n_backbone_random,best,ci95_lo,ci95_hi,baseline,selection,config,seed,path,source,table,note
run,prompt,l2p,l2p,cifar100,final_acc,70.0,1.0,3,0,0,0,0,1,,,,single,,,,,,
run,prompt,l2p,l2p,cifar100,avg_acc,77.0,1.0,3,0,0,0,0,1,,,,single,,,,,,
run,prompt,l2p,l2p,cifar100,forgetting,10.0,1.0,3,0,0,0,0,0,,,,single,,,,,,
run,prompt,l2p,l2p,imagenet-r,final_acc,51.0,1.4142135623730951,2,1,0,0,0,0,,,,single,,,,,,
run,prompt,l2p,l2p,imagenet-r,avg_acc,56.0,1.4142135623730951,2,1,0,0,0,0,,,,single,,,,,,
run,prompt,l2p,l2p,imagenet-r,forgetting,21.0,1.4142135623730951,2,1,0,0,0,0,,,,single,,,,,,
run,prompt,l2p,l2p,vtab,final_acc,,,0,2,0,0,0,0,,,,none,,,,,,
run,prompt,l2p,l2p,vtab,avg_acc,,,0,2,0,0,0,0,,,,none,,,,,,
run,prompt,l2p,l2p,vtab,forgetting,,,0,2,0,0,0,0,,,,none,,,,,,
reported,prompt,L2P,,cifar100,final_acc,83.83,,,,,,,,,,,,,,,Source B,Table 1,10 sessions
reported,prompt,L2P,,cifar100,avg_acc,88.48,,,,,,,,,,,,,,,Source B,Table 1,10 sessions
run,representation,simplecil,simplecil,cifar100,final_acc,70.0,0.0,3,0,0,0,0,1,,,,single,,,,,,
run,representation,simplecil,simplecil,cifar100,avg_acc,75.0,0.0,3,0,0,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,cifar100,forgetting,8.0,0.0,3,0,0,0,0,1,,,,single,,,,,,
run,representation,simplecil,simplecil,imagenet-r,final_acc,62.0,2.0,3,0,0,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,imagenet-r,avg_acc,71.0,1.0,3,0,0,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,imagenet-r,forgetting,12.0,2.0,3,0,0,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,cub200,final_acc,40.0,,1,0,1,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,cub200,avg_acc,45.0,,1,0,1,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,cub200,forgetting,3.0,,1,0,1,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,vtab,final_acc,50.0,,1,0,0,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,vtab,avg_acc,60.0,,1,0,0,0,0,0,,,,single,,,,,,
run,representation,simplecil,simplecil,vtab,forgetting,5.0,,1,0,0,0,0,0,,,,single,,,,,,
run,representation,ranpac,ranpac,imagenet-r,final_acc,72.0,2.6457513110645907,3,0,0,0,0,0,,,,validation,method.rp.dim = 512,,,,,
run,representation,ranpac,ranpac,imagenet-r,avg_acc,80.0,0.0,3,0,0,0,0,1,,,,validation,method.rp.dim = 512,,,,,
run,representation,ranpac,ranpac,imagenet-r,forgetting,5.0,0.0,3,0,0,0,0,0,,,,validation,method.rp.dim = 512,,,,,
run,representation,ranpac,ranpac,vtab,final_acc,,,0,0,0,0,0,0,,,,refused,,,,,,
run,representation,ranpac,ranpac,vtab,avg_acc,,,0,0,0,0,0,0,,,,refused,,,,,,
run,representation,ranpac,ranpac,vtab,forgetting,,,0,0,0,0,0,0,,,,refused,,,,,,
reported,representation,RanPAC,,imagenet-r,final_acc,77.9,,,,,,,,,,,,,,,"Source A, 2023",Table 2,"mean of per-task accuracies, not ""overall"" accuracy; 100% of sessions_used"
reported,representation,NCM with Phase 1,,imagenet-r,final_acc,70.1,,,,,,,,,,,,,,,"Source A, 2023",Table 2,prototypes after first-session tuning
run,safe,safe,safe,imagenet-r,final_acc,81.5,2.1213203435596424,2,0,0,1,0,1,,,,single,,,,,,
run,safe,safe,safe,imagenet-r,avg_acc,79.0,0.0,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,safe,imagenet-r,forgetting,4.0,0.0,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,slow,imagenet-r,final_acc,75.0,0.0,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,slow,imagenet-r,avg_acc,77.0,0.0,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,slow,imagenet-r,forgetting,2.0,0.0,2,0,0,1,0,1,,,,single,,,,,,
run,safe,safe,fast,imagenet-r,final_acc,79.0,1.4142135623730951,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,fast,imagenet-r,avg_acc,78.0,0.0,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,fast,imagenet-r,forgetting,6.0,0.0,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,authors_protocol,imagenet-r,final_acc,82.0,1.4142135623730951,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,authors_protocol,imagenet-r,avg_acc,81.0,0.0,2,0,0,1,0,0,,,,single,,,,,,
run,safe,safe,authors_protocol,imagenet-r,forgetting,,,0,0,0,1,0,0,,,,single,,,,,,
paired,prompt,l2p,l2p,cifar100,final_acc_diff,0.0,1.0,3,,,,,,-2.4841377117504977,2.4841377117504977,simplecil,single,,,,,,
paired,prompt,l2p,l2p,imagenet-r,final_acc_diff,-10.0,0.0,2,,,,,,-10.0,-10.0,simplecil,single,,,,,,
paired,representation,ranpac,ranpac,imagenet-r,final_acc_diff,10.0,1.0,3,,,,,,7.515862288249503,12.484137711750497,simplecil,validation,method.rp.dim = 512,,,,,
paired,safe,safe,safe,imagenet-r,final_acc_diff,20.5,0.7071067811865476,2,,,,,,14.146897631913816,26.853102368086184,simplecil,single,,,,,,
paired,safe,safe,slow,imagenet-r,final_acc_diff,14.0,1.4142135623730951,2,,,,,,1.293795263827631,26.706204736172367,simplecil,single,,,,,,
paired,safe,safe,fast,imagenet-r,final_acc_diff,18.0,0.0,2,,,,,,18.0,18.0,simplecil,single,,,,,,
paired,safe,safe,authors_protocol,imagenet-r,final_acc_diff,21.0,0.0,2,,,,,,21.0,21.0,simplecil,single,,,,,,
unfinished,representation,simplecil,,cub200,,,,,,,,,,,,,,,2,runA/trials/cub_simplecil_2,,,checkpoint after session 2
failed,prompt,l2p,,imagenet-r,,,,,,,,,,,,,,,3,runA/trials/inr_l2p_3,,,"NaN loss at session 2, epoch 3"
failed,representation,ranpac,,imagenet-r,,,,,,,,,,,,,,method.rp.dim = 1024,2,runA/trials/inr_ranpac1024_2,,,"trial.h5 status ""stopped"""
failed,,,,,,,,,,,,,,,,,,,,runA/trials/zz_broken,,,out of memory
unfinished,,,,,,,,,,,,,,,,,,,,runA/trials/zzz_empty,,,no results yet
failed,prompt,l2p,,vtab,,,,,,,,,,,,,,method.l2p.pool = 10,1,runB/trials/vtab_l2p10,,,out of GPU memory
failed,prompt,l2p,,vtab,,,,,,,,,,,,,,method.l2p.pool = 20,1,runB/trials/vtab_l2p20,,,out of GPU memory
missing,representation,ranpac,,imagenet-r,,,,,,,,,,,,,,method.rp.dim = 1024,3,,,,
missing,safe,safe,,imagenet-r,,,,,,,,,,,,,,,3,,,,
'''


def test_formats(safecl):
    base = [safecl, "report", "runA", "runB", "runC", "--published", "published.csv",
            "--baseline", "simplecil"]
    p = run(base + ["--plots", "plots"])
    check(p.returncode == 0, "md report runs", p.stderr)
    same_text("md", p.stdout, EXPECTED_MD)
    same_text("md rerun", run(base).stdout, EXPECTED_MD)
    os.makedirs("out")
    p = run(base + ["--out", "out/report.md"])
    check(p.returncode == 0 and p.stdout == "", "--out prints nothing")
    same_text("--out file", open("out/report.md").read() if os.path.exists("out/report.md") else "",
              EXPECTED_MD)
    same_text("latex", run(base + ["--format", "latex"]).stdout, EXPECTED_TEX)
    got = run(base + ["--format=csv", "--forgetting"]).stdout
    same_text("csv", got, EXPECTED_CSV)
    rows = list(csv.reader(io.StringIO(got)))
    check(len({len(r) for r in rows}) == 1 and len(rows[0]) == 24, "csv: 24 fields on every line")
    stds = [r[7] for r in rows if r[:6] == ["run", "prompt", "l2p", "l2p", "imagenet-r", "final_acc"]]
    check(stds and float(stds[0]) == math.sqrt(2.0),
          "csv: full precision, the std of 50 and 52 reads back as sqrt(2) exactly %s" % stds)
    notes = [r[23] for r in rows if r[0] == "reported" and r[2] == "RanPAC"]
    check(notes == ['mean of per-task accuracies, not "overall" accuracy; 100% of sessions_used'],
          "csv: quoted field with commas and quotes reads back")
    md = run(base + ["--forgetting"]).stdout
    check("| IN-R final | IN-R avg | IN-R forgetting |" in md, "md --forgetting: forgetting columns")
    check("| SimpleCIL | **70.00 ± 0.00** (3) | 75.00 ± 0.00 (3) | **8.00 ± 0.00** (3) |" in md,
          "md --forgetting: lowest forgetting is the best")


def test_class_orders(safecl):
    """runD (report_fixtures.make_orders): one note names, per dataset with two finished seeds,
    whether the seeds varied the class order, from the recorded orders and the config."""
    want = ("Class order over seeds (the released code draws one per seed, so its published "
            "spreads over seeds are over class orders; docs/methods.md a.2): IN-A varies with seed "
            "in some trials only; CUB-200 varies with seed; OB pinned (order\\_seed = 7); VTAB "
            "fixed (not shuffled).")
    md = run([safecl, "report", "runD", "--no-published"]).stdout
    check(("\n- " + want + "\n") in md, "md: the class-order note per dataset (IN-R, one seed, "
          "not named)", md[md.find("### Notes"):])
    tex = run([safecl, "report", "runD", "--no-published", "--format", "latex"]).stdout
    check(("\n" + want + "\\par\n") in tex, "latex: the same class-order note",
          tex[tex.find("minipage"):])
    csv_text = run([safecl, "report", "runD", "--no-published", "--format", "csv"]).stdout
    check("Class order" not in csv_text, "csv: no notes")


def test_plots():
    want = {"cifar100": 2, "imagenet-r": 6, "cub200": 1, "vtab": 1}
    for dataset, n in sorted(want.items()):
        path = os.path.join("plots", dataset + ".svg")
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            check(False, "%s parses as XML: %s" % (path, e))
            continue
        ns = "{http://www.w3.org/2000/svg}"
        lines = root.findall(ns + "polyline")
        legend = [t.text for t in root.findall(ns + "text") if t.text and "(n=" in t.text]
        check(root.tag == ns + "svg" and len(lines) == n and len(legend) == n,
              "%s: well-formed SVG with %d curve(s)" % (path, n),
              "got %d curves, legend %s" % (len(lines), legend))
    legend = [t.text for t in ET.parse("plots/imagenet-r.svg").getroot().iter()
              if t.text and "(n=" in t.text]
    check(legend == ["L2P (n=2)", "SimpleCIL (n=3)", "RanPAC (n=3)", "SAFE (n=2)",
                     "SAFE: slow learner (n=2)", "SAFE: fast learner (n=2)"],
          "IN-R plot: rows in table order, the diagnostic left out")
    check(sorted(os.listdir("plots")) == sorted(d + ".svg" for d in want), "one SVG per dataset")
    # each curve: its own dash pattern and marker shape (the first marker after its polyline)
    style, current = [], None
    for e in ET.parse("plots/imagenet-r.svg").getroot():
        if e.tag.endswith("polyline"):
            current = [e.get("stroke-dasharray"), None]
            style.append(current)
        elif e.tag.endswith("path") and current and current[1] is None:
            current[1] = e.get("class")
    dash = [d for d, _ in style]
    check(len(style) == 6 and None not in dash and len(set(dash)) == 5 and
          all(m and m.startswith("marker-") for _, m in style) and
          len(set(map(tuple, style))) == 6 and style[0][0] != style[1][0] and
          style[0][1] != style[1][1],
          "IN-R plot: every curve its own dash pattern and marker shape %s" % style)


def test_rejections(safecl):
    for version, hints in ((4, ["schema version 4", "newer", "upgrade"]),
                           (0, ["schema version 0", "older", "regenerate"]),
                           (None, ["no schema_version attribute", "not a safecl file"])):
        d = "schema_%s" % version
        report_fixtures.write_trial(d, "vtab", "simplecil", "representation", 1,
                                    [("simplecil", 50, 60, 5)], schema=version)
        p = run([safecl, "report", d])
        check(p.returncode == 1 and p.stdout == "" and all(h in p.stderr for h in hints),
              "schema_version %s rejected with a hint: %s" % (version, ", ".join(hints)),
              p.stderr)
    # 2 adds /ridge_search and changes /losses, which the report does not read; 3 stores strings
    # fixed-length
    for version in (1, 2, 3):
        d = "schema_ok_%s" % version
        report_fixtures.write_trial(d, "vtab", "simplecil", "representation", 1,
                                    [("simplecil", 50, 60, 5)], schema=version)
        p = run([safecl, "report", d])
        check(p.returncode == 0 and "50.00" in p.stdout, "schema_version %s is read" % version,
              p.stderr)
    # A damaged primary_predictor: a nested path or the group itself once overflowed the
    # predictor table (heap write); flipped bytes give a name that is not plain or not present.
    for k, (primary, msg) in enumerate((("simplecil/acc", "is not a plain predictor name"),
                                        (".", "is not a plain predictor name"),
                                        ("simple\x01cil", "is not a plain predictor name"),
                                        ("x" * 300, "is not a plain predictor name"),
                                        ("simplecim", "has no /predictors/simplecim"))):
        d = "bad_primary_%d" % k
        report_fixtures.write_trial(d, "vtab", "simplecil", "representation", 1,
                                    [("simplecil", 50, 60, 5)])
        path = os.path.join(d, "trial.h5")
        with h5py.File(path, "r+") as f:
            f.attrs["primary_predictor"] = primary
        p = run([safecl, "report", d])
        check(p.returncode == 1 and path in p.stderr and msg in p.stderr,
              "primary_predictor %r refused naming the file: '%s'" % (primary[:20], msg),
              "got exit %d: %s" % (p.returncode, p.stderr[-400:]))
    os.makedirs("empty")
    cases = [
        (["nonexistent"], 1, "nonexistent is not a directory"),
        (["empty"], 1, "neither trial.h5 nor trials/"),
        (["runA", "--baseline", "coda"], 1, "--baseline coda: no trial of that method (methods: "
                                            "l2p, simplecil, ranpac, safe)"),
        (["runA", "--published", "bad.csv"], 1, "bad.csv:3: metric 'final' (expected final_acc"),
        (["runA", "--published", "nothere.csv"], 1, "cannot open published numbers nothere.csv"),
        ([], 2, "usage: safecl report"),
        (["runA", "--format", "html"], 2, "--format html: expected md, latex or csv"),
        (["runA", "--baseline"], 2, "--baseline needs a value"),
        (["runA", "--bogus"], 2, "--bogus is not an option"),
    ]
    with open("bad.csv", "w") as f:
        f.write(report_fixtures.PUBLISHED.splitlines()[0] + "\nS,T,M,prompt,cifar100,final_acc,1,n"
                "\nS,T,M,prompt,cifar100,final,2,n\n")
    for args, code, msg in cases:
        p = run([safecl, "report"] + args)
        check(p.returncode == code and msg in p.stderr,
              "safecl report %s: exit %d, '%s'" % (" ".join(args), code, msg),
              "got exit %d: %s" % (p.returncode, p.stderr[-400:]))


def test_shipped(safecl, analysis):
    published = os.path.join(analysis, "published.csv")
    with open(published, newline="") as f:
        rows = list(csv.DictReader(f))
    ranpac = {r["dataset"]: r["value"] for r in rows if r["method"] == "RanPAC"}
    check(ranpac == {"cifar100": "92.2", "imagenet-r": "77.9", "imagenet-a": "62.4",
                     "cub200": "90.3", "omnibenchmark": "79.9", "vtab": "92.2", "cars": "77.5",
                     "domainnet": "66.6"}, "published.csv: RanPAC's final accuracies")
    check(all("not overall accuracy" in r["protocol_note"] for r in rows if "RanPAC" in r["source"]),
          "published.csv: RanPAC rows say the metric is not overall accuracy")
    check(any(r["method"] == "SAFE" and r["dataset"] == "domainnet" and r["value"] == "67.82"
              for r in rows), "published.csv: SAFE DomainNet 67.82")
    p = run([safecl, "report", "runA", "--published", published])
    out = p.stdout
    ref = re.search(r"\| RanPAC \(reported \[(\d+)\]\) \| 92.2 \| — \| 77.9 \| — \| 90.3 \| — \|", out)
    check(p.returncode == 0 and ref is not None,
          "shipped published numbers beside ours, marked reported")
    check(ref is not None and ("| NCM only (RanPAC ablation) (reported [%s]) | 83.4 | — | 61.2 | — "
                               "| 85.1 | — |" % ref.group(1)) in out
          and "67.82" not in out, "ablation rows shown, DomainNet (no column) not")
    check("| L2P (reported [1]) | 79.93 | 85.94 | 69.77 | 75.46 | 56.25 | 67.05 |" in out
          and "| SimpleCIL (reported [1]) | 81.26 | 87.57 | 54.55 | 61.26 | 86.73 | 92.20 |" in out,
          "the survey table (MOS Table 1) gives L2P's and SimpleCIL's final and average accuracy")
    lines = out.splitlines()
    at = [i for i, l in enumerate(lines) if l.startswith("| APER+")]
    check(len(at) == 10 and at == list(range(at[0], at[0] + 10)),
          "the APER variants' published rows stay together")
    bare = [(r["method"], r["dataset"], r["metric"]) for r in rows
            if not (r["value"] and r["source"] and r["protocol_note"])]
    check(not bare, "published.csv: every row has a value, a source and a protocol note %s" % bare)
    prompt = [r for r in rows if r["category"] == "prompt"]
    check(all(("batch" in r["protocol_note"]) for r in prompt if r["method"] in ("L2P", "DualPrompt")),
          "published.csv: every L2P and DualPrompt row says its test selection was batch-wise")
    check(all(("SAFE" in r["protocol_note"]) for r in prompt),
          "published.csv: every prompt row says whether its protocol is SAFE's")
    cwd = os.getcwd()
    os.chdir(os.path.dirname(analysis))  # the default: analysis/published.csv in the cwd
    default = run([safecl, "report", os.path.join(cwd, "runA")]).stdout
    none = run([safecl, "report", os.path.join(cwd, "runA"), "--no-published"]).stdout
    os.chdir(cwd)
    check("RanPAC (reported [" in default and "(reported [" not in none,
          "published numbers by default from the repository root, --no-published turns them off")


def test_prompt_family(safecl, analysis):
    """runP: the prompt-based section with L2P, DualPrompt and CODA-Prompt, L2P's pilot_diag
    predictor as a never-ranked diagnostic row with its note, and the shipped published rows."""
    p = run([safecl, "report", "runP", "--published", os.path.join(analysis, "published.csv")])
    out = p.stdout
    rows = [l for l in out.splitlines() if l.startswith("| ")][2:]  # past header and rule
    names = [l.split(" | ")[0][2:] for l in rows]
    want = ["*Prompt-based*", "L2P", "L2P: PILOT batch-wise protocol (leaks test batches)",
            "DualPrompt", "CODA-Prompt"]
    own = [n for n in names if "(reported" not in n][:5]
    check(p.returncode == 0 and own == want, "the prompt-based section lists the three methods "
          "and L2P's diagnostic: %s" % own, p.stderr)
    diag = [l for l in rows if l.startswith("| L2P: PILOT")]
    check(len(diag) == 1 and "**" not in diag[0] and "81.50 ± 0.71 (2)" in diag[0],
          "pilot_diag: its own row, never bold though above every own row", out)
    check("**75.50 ± 0.71** (2)" in out, "CODA-Prompt is the best prompt run (the diagnostic is not)")
    check("- L2P: PILOT batch-wise protocol (leaks test batches): the prompt method evaluated as "
          "PILOT's released code does it" in out, "the diagnostic's note")
    at, dp = names.index("L2P"), names.index("DualPrompt")
    check(dp > at + 2 and all(n.startswith("L2P (reported [") for n in names[at + 2:dp]),
          "the published L2P rows follow L2P's own rows", "\n".join(names))


def test_mixture_family(safecl, analysis):
    """runM: EASE and LAE trials (method_category "mixture") in a "Model mixture" section between
    the representation-based one (SimpleCIL, SLCA) and SAFE's; a failed EASE trial whose file
    names no category placed in the same row; the shipped published rows of SLCA, EASE and the
    MOS table's reference row beside them, with their protocol notes; the CSV's category column."""
    published = os.path.join(analysis, "published.csv")
    p = run([safecl, "report", "runM", "--published", published])
    out = p.stdout
    rows = [l for l in out.splitlines() if l.startswith("| ")][2:]  # past header and rule
    names = [l.split(" | ")[0][2:] for l in rows]
    own = [n for n in names if "(reported" not in n]
    want = ["*Representation-based*", "SimpleCIL", "SLCA", "*Model mixture*", "EASE", "LAE",
            "*SAFE (with its slow and fast learners)*", "SAFE", "SAFE: slow learner",
            "SAFE: fast learner"]
    check(p.returncode == 0 and own[own.index("*Representation-based*"):] == want,
          "the model-mixture section holds EASE and LAE, between representation and SAFE: %s"
          % own, p.stderr)
    ease, lae = names.index("EASE"), names.index("LAE")
    between = names[ease + 1:lae]
    check(len(between) == 4 and all(n.startswith("EASE (reported [") for n in between),
          "EASE's four published rows (MOS table, EASE table, IN1K and IN21K logs) follow EASE",
          "\n".join(names))
    check(names[lae + 1].startswith("MOS (reported [") and names[lae + 2].startswith("*SAFE"),
          "the MOS table's reference row closes the model-mixture section", "\n".join(names))
    ease_row = rows[ease]
    check("**85.50 ± 0.71** (2)" in ease_row and "— (0; 1 failed)" in ease_row,
          "EASE's row: its runs, and the failed IN-R trial placed by its method name", ease_row)
    slca = names.index("SLCA")
    after = rows[slca + 1:slca + 3]
    check(all(r.startswith("| SLCA (reported [") for r in after)
          and any("| 88.55 | 92.49 | 77.00 | 81.17 |" in r for r in after)
          and any("| 91.53 | — | 77.00 | — |" in r for r in after),
          "SLCA's published rows (MOS table, README figure) follow SLCA's runs", "\n".join(rows))
    check("| EASE (reported [" in out and "| 85.8 | 91.5145 | 76.17 | 81.737 |" in out
          and "| 84.21 | 90.619 | 77.33 | 82.604 |" in out,
          "EASE's run logs (IN1K and IN21K) keep the logs' digits", out)
    check("| 70.58 | 78.31 |" in out, "EASE's own table: IN-R B0-Inc5", out)
    notes = [l for l in out.splitlines() if l.startswith("- [")]
    check(any("EASE: survey protocol: ViT-B/16-IN21K, CIFAR B0-Inc5" in l for l in notes)
          and any("SLCA: survey protocol: ViT-B/16-IN21K" in l for l in notes)
          and any("EASE: EASE's released config and code, ViT-B/16-IN1K" in l for l in notes),
          "the protocol notes of the EASE and SLCA rows", "\n".join(notes))
    p = run([safecl, "report", "runM", "--published", published, "--format", "csv"])
    cats = {(r["kind"], r["method"]): r["category"] for r in csv.DictReader(io.StringIO(p.stdout))}
    check(p.returncode == 0 and cats.get(("run", "ease")) == "mixture"
          and cats.get(("run", "lae")) == "mixture" and cats.get(("failed", "ease")) == "mixture"
          and cats.get(("run", "slca")) == "representation"
          and cats.get(("reported", "EASE")) == "mixture"
          and cats.get(("reported", "MOS")) == "mixture",
          "CSV: EASE, LAE (runs, failed, reported) and MOS in category mixture, SLCA in "
          "representation", str(cats))
    p = run([safecl, "report", "runM", "--format", "latex", "--no-published"])
    check(p.returncode == 0 and "\\textit{Model mixture}" in p.stdout,
          "LaTeX: the model-mixture heading", p.stdout)


def test_load_results(analysis):
    p = run([sys.executable, os.path.join(analysis, "load_results.py"), "runA", "runC"])
    out = p.stdout
    check(p.returncode == 0 and "imagenet-r     simplecil  simplecil        #0  final_acc 62.00 "
          "+- 2.00  avg_acc 71.00 +- 1.00  (n=3)" in out and "failed" in out
          and "imagenet-r ranpac #1: method.rp.dim = 512;" in out,
          "load_results.py prints trials and grouped means (duplicate counted once)",
          p.stdout + p.stderr)
    lines = out.splitlines()
    check(lines and lines[0].split()[:6] == ["status", "dataset", "method", "predictor", "seed",
                                            "method.rp.dim"] and
          any(l.split()[:6] == ["finished", "imagenet-r", "ranpac", "ranpac", "3", "512"]
              for l in lines) and
          any(l.split()[:5] == ["failed", "imagenet-r", "ranpac", "2", "1024"] for l in lines) and
          "#1 method.rp.dim=512 final_acc 72.00 +- 2.65" in out,
          "load_results.py: the grid key as a column of every trial and in the means", out)
    check(any(l.startswith("failed") and l.endswith(": NaN loss at session 2, epoch 3")
              for l in lines), "load_results.py: a failed trial placed, with its message", out)


def test_real(safecl, source):
    cfgs = [os.path.join(source, "configs", c) for c in
            ("datasets/synthetic.cfg", "methods/simplecil.cfg", "backbones/vit_tiny_random.cfg")]
    small = ["dataset.synthetic.classes=10", "dataset.synthetic.train_per_class=4",
             "dataset.synthetic.test_per_class=4"]
    for seed in (1, 2):
        p = run([safecl, "train"] + cfgs + small + ["run.dir=real/trials/s%d" % seed,
                                                    "seed=%d" % seed])
        check(p.returncode == 0, "safecl train seed %d" % seed, p.stderr)
        check("RANDOM WEIGHTS: backbone.weights is not set" in p.stderr,
              "safecl train seed %d warns that the backbone has random weights" % seed, p.stderr)
    p = run([safecl, "report", "real", "--no-published"])
    final = []
    for seed in (1, 2):
        with h5py.File("real/trials/s%d/trial.h5" % seed, "r") as f:
            final.append(float(f["predictors/simplecil"].attrs["final_acc"]))
            check(int(f.attrs.get("backbone_random", -1)) == 1,
                  "trial.h5 of seed %d records backbone_random = 1" % seed)
    # random weights are counted in the cell (analysis/SCHEMA.md, backbone_random)
    cell = "%.2f ± %.2f (2; 2 random weights)" % (np.mean(final), np.std(final, ddof=1))
    check(p.returncode == 0 and ("| SimpleCIL | %s |" % cell) in p.stdout,
          "real trial files: SimpleCIL final %s, as h5py reads them" % cell, p.stdout + p.stderr)
    check("docs/methods.md a.2): Synthetic varies with seed." in p.stdout,
          "real trial files: the class order varied with the seed (the default)", p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safecl", required=True)
    ap.add_argument("--analysis", required=True, help="the repository's analysis/ directory")
    args = ap.parse_args()
    safecl = os.path.abspath(args.safecl)
    analysis = os.path.abspath(args.analysis)
    tmp = tempfile.mkdtemp(prefix="safecl_report_")
    os.chdir(tmp)
    try:
        report_fixtures.make_all(tmp)
        test_formats(safecl)
        test_class_orders(safecl)
        test_plots()
        test_rejections(safecl)
        test_shipped(safecl, analysis)
        test_prompt_family(safecl, analysis)
        test_mixture_family(safecl, analysis)
        test_load_results(analysis)
        test_real(safecl, os.path.dirname(analysis))
    finally:
        os.chdir("/")
        if not failures:
            shutil.rmtree(tmp)
    if failures:
        print("%d failure(s); files kept in %s" % (len(failures), tmp))
        return 1
    print("test_report: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
