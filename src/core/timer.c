/* timer.c: monotonic wall-clock timers over the fixed list of phases (docs/conventions.md 16). */
#include "safecl/core.h"

#include <time.h>

double scl_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void scl_timers_reset(scl_timers *t) {
  for (int i = 0; i < SCL_TIMER_COUNT; i++) t->total[i] = t->started[i] = 0.0;
}

void scl_timer_start(scl_timers *t, scl_timer_id id) { t->started[id] = scl_now(); }

void scl_timer_stop(scl_timers *t, scl_timer_id id) { t->total[id] += scl_now() - t->started[id]; }

const char *scl_timer_name(scl_timer_id id) {
  static const char *const names[] = {
#define SCL_TIMER_STR(name) #name,
      SCL_TIMER_LIST(SCL_TIMER_STR)
#undef SCL_TIMER_STR
  };
  return (id >= 0 && id < SCL_TIMER_COUNT) ? names[id] : "?";
}
