"""peer_common.py: the timing loop and summary line the PyTorch training-step peers share
(prompt_peer.py, methods_peer.py): warm-up steps, then timed steps, and one line of key=value
pairs that alternate.sh reads (wall and best time per step, img/s, CPU time, the step's phases,
trained values, last loss, peak resident set of the process)."""
import resource
import time

import torch


def measure(step, args, arch, phases, n_params):
    """Runs args.warmup untimed and args.iters timed calls of step(), which returns the seconds
    of each phase named in `phases` and then the loss, and prints the summary line."""
    for _ in range(args.warmup):
        step()
    times, sums = [], [0.0] * len(phases)
    cpu0 = time.process_time()
    for _ in range(args.iters):
        t0 = time.perf_counter()
        *parts, loss = step()
        times.append(time.perf_counter() - t0)
        sums = [s + p for s, p in zip(sums, parts)]
    n = args.iters
    cpu = (time.process_time() - cpu0) / n
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    mean, best = sum(times) / len(times), min(times)
    phase_text = " ".join(f"{name}={s / n:.4f}" for name, s in zip(phases, sums))
    print(f"peer=torch-{torch.__version__} arch={arch} method={args.method} batch={args.batch} "
          f"threads={args.threads} iters={n} s_per_iter={mean:.4f} best_s_per_iter={best:.4f} "
          f"img_per_s={args.batch / mean:.3f} best_img_per_s={args.batch / best:.3f} "
          f"cpu_s_per_iter={cpu:.4f} {phase_text} "
          f"params={n_params} loss={loss:.4f} peak_rss_mb={rss_mb:.1f}")
