/* crash.c: a worker's fatal-signal handler, which records "this trial crashed" in the ledger
 * before the process dies (docs/architecture.md 7).
 *
 * The crash budget of a sweep (sweep.max_crashes) counts only what a trial's own process saw:
 * a SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT while the trial ran. A job killed from outside
 * (SIGKILL, node loss, the OOM killer) cannot be seen by the process and leaves no record, so it
 * is never charged to the trial it interrupted. The handler runs in a process whose heap may be
 * corrupt, so it only uses async-signal-safe calls (clock_gettime, openat, write, fsync, close,
 * sigaction, raise) on buffers formatted when the trial was armed; the record's CRC, time and
 * signal are the only things computed in the handler. It then re-raises the signal with the
 * default action, so the process still dies of it (and MPI still ends the job).
 *
 * Each crash goes into a file of its own (ledger.crash.<host>.<pid>.<stamp>.log, created with
 * O_EXCL) rather than into the coordinator's ledger: the coordinator may be on another node, and
 * appends from two hosts to one file are not atomic on a network filesystem. Readers merge every
 * ledger.*.log already. The handler does not chain to a handler installed before it (Open MPI's
 * backtrace printer): a handler that returns from a synchronous fault would loop. */
#define _DEFAULT_SOURCE /* sigaltstack and SA_ONSTACK (XSI) on top of the build's POSIX 2008 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "orch_internal.h"

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define N_FATAL ((int)(sizeof fatal_signals / sizeof fatal_signals[0]))

/* What the handler needs, formatted at arm time. `armed` is set last and cleared first. */
static struct {
  volatile sig_atomic_t armed;
  int dir_fd;
  char name[256];   /* the crash file's name in RUN_DIR */
  char middle[128]; /* " <id> <group> <attempt> " */
  char stamp[40];   /* "%.17g" of the attempt's stamp */
  char where[512];  /* " in world rank <r> on <host> (pid <p>)", escaped */
  const volatile int *boundaries;
} crash = {.dir_fd = -1};

static atomic_flag writing = ATOMIC_FLAG_INIT; /* lock-free, so usable in a handler */
static char alt_stack[1 << 16];

/* A bounded string builder on a caller's buffer: nothing but loops and stores. */
typedef struct sbuf {
  char *p;
  size_t n, cap;
  int overflow;
} sbuf;

static void put(sbuf *b, const char *s) {
  for (; *s; s++) {
    if (b->n + 1 >= b->cap) {
      b->overflow = 1;
      return;
    }
    b->p[b->n++] = *s;
  }
}

static void put_uint(sbuf *b, unsigned long long v, int min_digits) {
  char d[24];
  int k = 0;
  do {
    d[k++] = (char)('0' + v % 10);
    v /= 10;
  } while (v && k < 24);
  while (k < min_digits && k < 24) d[k++] = '0';
  char s[2] = {0, 0};
  while (k) {
    s[0] = d[--k];
    put(b, s);
  }
}

static void put_int(sbuf *b, long long v) {
  if (v < 0) {
    put(b, "-");
    put_uint(b, (unsigned long long)(-(v + 1)) + 1, 1);
  } else {
    put_uint(b, (unsigned long long)v, 1);
  }
}

static const char *signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV (segmentation fault)";
    case SIGBUS:
      return "SIGBUS (bus error)";
    case SIGFPE:
      return "SIGFPE (arithmetic exception)";
    case SIGILL:
      return "SIGILL (illegal instruction)";
    case SIGABRT:
      return "SIGABRT (abort)";
    default:
      return "fatal signal";
  }
}

size_t orch_crash_format(char *buf, size_t cap, double time_s, int sessions, int sig) {
  if (cap < 16) return 0;
  sbuf b = {buf, 9, cap, 0}; /* "<crc> " is filled in last */
  put(&b, "CRASHED ");
  long long whole = (long long)time_s;
  put_int(&b, whole);
  put(&b, ".");
  put_uint(&b, (unsigned long long)((time_s - (double)whole) * 1e6), 6);
  put(&b, crash.middle);
  put_int(&b, sessions);
  put(&b, " ");
  put_int(&b, sig);
  put(&b, " ");
  put(&b, crash.stamp);
  put(&b, " 0 0 0 ");
  put(&b, signal_name(sig));
  put(&b, crash.where);
  if (b.overflow || b.n + 2 > cap) return 0;
  uint32_t crc = orch_crc32(buf + 9, b.n - 9);
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++) buf[i] = hex[(crc >> (28 - 4 * i)) & 0xF];
  buf[8] = ' ';
  buf[b.n++] = '\n';
  buf[b.n] = '\0';
  return b.n;
}

static void on_fatal(int sig) {
  /* another thread faulting at the same time must not write a second line */
  if (crash.armed && !atomic_flag_test_and_set(&writing)) {
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = orch_crash_format(line, sizeof line, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec,
                                 crash.boundaries ? *crash.boundaries : 0, sig);
    int fd = n ? openat(crash.dir_fd, crash.name,
                        O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644)
               : -1;
    if (fd >= 0) {
      ssize_t w = write(fd, line, n);
      (void)w; /* nothing can be done about a failed write while dying */
      fsync(fd);
      close(fd);
      static const char note[] = "safecl: fatal signal in a trial: recorded as a crash\n";
      w = write(STDERR_FILENO, note, sizeof note - 1);
      (void)w;
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
  raise(sig); /* pending until the handler returns; then the default action ends the process */
}

void orch_crash_install(void) {
  (void)orch_crc32("", 0); /* builds its table now, outside any handler */
  stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack, .ss_flags = 0};
  int alt = sigaltstack(&ss, NULL) == 0; /* a stack overflow still gets its record */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = alt ? SA_ONSTACK : 0;
  for (int i = 0; i < N_FATAL; i++) sigaction(fatal_signals[i], &sa, NULL);
}

scl_err orch_crash_arm(const char *run_dir, const char *id, int group, int attempt, double stamp,
                       int world_rank, const volatile int *boundaries) {
  orch_crash_disarm();
  char host[256] = "?";
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
  host[sizeof host - 1] = '\0';
  for (char *p = host; *p; p++) /* a file name and one ledger field: no separators */
    if (*p == '/' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\\') *p = '_';
  long long usec = (long long)(stamp * 1e6);
  snprintf(crash.name, sizeof crash.name, "ledger.crash.%.64s.%ld.%lld.log", host, (long)getpid(),
           usec);
  snprintf(crash.middle, sizeof crash.middle, " %.32s %d %d ", id, group, attempt);
  snprintf(crash.stamp, sizeof crash.stamp, "%.17g", stamp);
  snprintf(crash.where, sizeof crash.where, " in world rank %d on %.200s (pid %ld)", world_rank,
           host, (long)getpid());
  crash.boundaries = boundaries;
  crash.dir_fd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  SCL_CHECK(crash.dir_fd >= 0, scl_errno_code(errno),
            "%s: cannot open the run directory (for crash records): %s", run_dir, strerror(errno));
  atomic_flag_clear(&writing);
  crash.armed = 1;
  return SCL_OK;
}

void orch_crash_disarm(void) {
  crash.armed = 0;
  if (crash.dir_fd >= 0) close(crash.dir_fd);
  crash.dir_fd = -1;
  crash.boundaries = NULL;
}
