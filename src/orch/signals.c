/* signals.c: SIGUSR1 and SIGTERM set a flag and nothing else (docs/architecture.md section 7).
 *
 * The coordinator reads the flag between messages and turns it into HALT/EXIT replies; groups
 * install the same handler only so that a signal forwarded to every rank (srun, mpirun) does not
 * kill them before the coordinator's HALT arrives. SA_RESTART keeps file and MPI calls from
 * failing with EINTR. */
#include <signal.h>
#include <string.h>

#include "orch_internal.h"

static volatile sig_atomic_t caught;

static void on_signal(int sig) {
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
}

int orch_signals_caught(void) { return (int)caught; }

void orch_signals_reset(void) { caught = 0; }
