/* signals.c: SIGUSR1, SIGTERM and SIGINT set a flag and nothing else (docs/architecture.md
 * section 7); a second SIGINT ends the process at once.
 *
 * The coordinator reads the flag between messages and turns it into HALT/EXIT replies; groups
 * install the same handler only so that a signal forwarded to every rank (srun, mpirun) does not
 * kill them before the coordinator's HALT arrives. `safecl train` polls the flag at every step and
 * session boundary through the trial's stop hook. SA_RESTART keeps file and MPI calls from
 * failing with EINTR. A SIGINT after any first signal (a user pressing Ctrl-C twice) restores
 * the default action and re-raises it, so the process dies of SIGINT (status 130 in a shell);
 * checkpoints are published by rename, so the previous one stays whole. */
#include <signal.h>
#include <string.h>

#include "orch_internal.h"
#include "safecl/orch.h"

static volatile sig_atomic_t caught;

static void on_signal(int sig) {
  if (caught && sig == SIGINT) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGINT, &dfl, NULL);
    raise(SIGINT); /* delivered when this handler returns: SIGINT is blocked inside it */
    return;
  }
  if (!caught) caught = sig;
}

void orch_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

int orch_signals_caught(void) { return (int)caught; }

void orch_signals_reset(void) { caught = 0; }

const char *orch_signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "a signal";
  }
}
