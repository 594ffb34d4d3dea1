/* test_ledger.c: the sweep ledger (ledger.h) and its replay (orch_state_*).
 *
 * Checks: the CRC is zlib's (so Python tools agree); records round-trip exactly (doubles, NaN,
 * escaped text) and a flipped byte is caught; a torn tail (a writer killed mid-record) is cut off
 * before appending again, while a damaged record in the middle is skipped and counted, as is a
 * record whose CRC is right but whose integer fields are out of range (count 1e300); ledgers
 * of several jobs merge in the order of their first records; replay gives each trial's status,
 * retries and the latest job's groups, and charges no crash for an attempt a dead job left open;
 * a CRASHED record formatted by the signal handler's code parses back, and crash files merge
 * with one count per attempt however many ranks wrote one; a child process that dies of SIGSEGV
 * while armed leaves exactly one CRASHED record, one that is SIGKILLed none; a FAILED record
 * with count 1 marks the trial as retryable by the next job; replaying 40,000 records costs
 * less than 8 times the CPU time of 10,000 (linear, not quadratic); a symlink planted as a job's
 * ledger or as the run directory's lock is refused by name and its target's bytes are left as
 * they were. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/orch/orch_internal.h"
#include "orch/orch_test.h"
#include "safecl/ledger.h"
#include "safecl/orch.h"

static orch_record rec(orch_rec_type type, double time, const char *id, int group) {
  orch_record r = {.type = type, .time = time, .group = group, .attempt = 1};
  if (id) snprintf(r.id, sizeof r.id, "%s", id);
  return r;
}

static void test_format(void) {
  CHECK(orch_crc32("123456789", 9) == 0xCBF43926u, "CRC-32 check value");
  orch_record r =
      rec(ORCH_REC_FINISHED, 1700000000.123456789, "0123456789abcdef0123456789abcdef", 3);
  r.attempt = 2;
  r.sessions = 7;
  r.count = -5;
  r.seconds = 1.0 / 3.0;
  r.final_acc = 66.66666666666667;
  r.avg_acc = NAN;
  r.val_acc = -0.0;
  snprintf(r.text, sizeof r.text, "tab\there\nnewline \\ back slash; spaces  kept");
  char line[8192];
  size_t n = orch_record_format(&r, line, sizeof line);
  CHECK(n > 0 && line[n - 1] == '\n', "formatted line ends with a newline");
  orch_record back;
  CHECK(orch_record_parse(line, n - 1, &back) == 0, "parse of a formatted line");
  CHECK(back.type == r.type && back.time == r.time && !strcmp(back.id, r.id) && back.group == 3 &&
            back.attempt == 2 && back.sessions == 7 && back.count == -5 &&
            back.seconds == r.seconds && back.final_acc == r.final_acc && isnan(back.avg_acc),
        "fields round-trip exactly");
  CHECK(!strcmp(back.text, r.text), "text round-trips: '%s'", back.text);
  CHECK(!memchr(line, '\t', n) && memchr(line, '\n', n) == line + n - 1,
        "no raw tab or newline inside the line");
  line[20] ^= 1;
  CHECK(orch_record_parse(line, n - 1, &back) == -1, "a flipped bit fails the CRC");
  orch_record job = rec(ORCH_REC_JOB, 1, NULL, 2);
  n = orch_record_format(&job, line, sizeof line);
  memcpy(line + 9, "ZZZ", 3); /* type JOB -> ZZZ, CRC recomputed: an unknown type */
  char crc[9];
  snprintf(crc, sizeof crc, "%08x", (unsigned)orch_crc32(line + 9, n - 10));
  memcpy(line, crc, 8);
  CHECK(orch_record_parse(line, n - 1, &back) == -2, "unknown record type with a valid CRC");
  printf("record format: ok\n");
}

static int64_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void append_raw(const char *path, const char *bytes) {
  FILE *f = fopen(path, "a");
  if (f) {
    fputs(bytes, f);
    fclose(f);
  }
}

static scl_err count_cb(void *ctx, const orch_record *r, const char *path) {
  (void)r;
  (void)path;
  ++*(int64_t *)ctx;
  return SCL_OK;
}

static void test_torn_tail(const char *dir) {
  orch_ledger *l = NULL;
  CHECK_OK(orch_ledger_open(dir, "job1", &l));
  if (!l) return;
  char path[1024];
  snprintf(path, sizeof path, "%s", orch_ledger_path(l));
  for (int i = 0; i < 5; i++) {
    orch_record r = rec(i ? ORCH_REC_START : ORCH_REC_JOB, 10 + i, NULL, 0);
    if (i) snprintf(r.id, sizeof r.id, "%032d", i);
    CHECK_OK(orch_ledger_append(l, &r, i == 4));
  }
  CHECK_OK(orch_ledger_close(&l));
  int64_t good = file_size(path);
  append_raw(path, "1234abcd START 15 00000000000000000000000000000005 0"); /* killed mid-write */
  int64_t n = 0, damaged = -1, tail = 0;
  CHECK_OK(orch_ledger_read_file(path, count_cb, &n, NULL, &damaged, &tail));
  CHECK(n == 5 && damaged == 0 && tail == good, "torn tail: %lld records, tail at %lld of %lld",
        (long long)n, (long long)tail, (long long)file_size(path));
  CHECK_OK(orch_ledger_open(dir, "job1", &l));
  CHECK(file_size(path) == good, "reopening cut the torn tail (%lld bytes, want %lld)",
        (long long)file_size(path), (long long)good);
  orch_record r = rec(ORCH_REC_END, 20, NULL, -1);
  if (l) CHECK_OK(orch_ledger_append(l, &r, 1));
  CHECK_OK(orch_ledger_close(&l));
  n = 0;
  CHECK_OK(orch_ledger_read_file(path, count_cb, &n, NULL, &damaged, &tail));
  CHECK(n == 6 && tail == file_size(path), "append after the cut: %lld records", (long long)n);
  /* a damaged terminated last line is a torn tail too: reopening cuts it */
  append_raw(path, "00000000 garbage at the end\n");
  CHECK_OK(orch_ledger_open(dir, "job1", &l));
  CHECK_OK(orch_ledger_close(&l));
  CHECK(file_size(path) == tail, "damaged last line cut on reopen");
  /* a damaged record in the middle (valid records after it) is skipped and counted */
  char line[8192];
  size_t len = orch_record_format(&r, line, sizeof line);
  append_raw(path, "00000000 garbage in the middle\n");
  line[len] = '\0';
  append_raw(path, line);
  n = 0;
  CHECK_OK(orch_ledger_read_file(path, count_cb, &n, NULL, &damaged, &tail));
  CHECK(n == 6 + 1 && damaged == 1 && tail == file_size(path),
        "mid-file damage skipped: %lld records, %lld damaged", (long long)n, (long long)damaged);
  printf("torn tail and damage: ok\n");
}

/* r's line with space-separated field `k` after the CRC (0: type, 3: group, 6: count) replaced
 * by `value`, the CRC recomputed: a record no writer produces but that passes the CRC. */
static size_t with_field(const orch_record *r, int k, const char *value, char *out, size_t cap) {
  char line[8192];
  size_t n = orch_record_format(r, line, sizeof line);
  line[n - 1] = '\0'; /* drop the newline */
  char *start = line + 9;
  for (int i = 0; i < k && start; i++) start = strchr(start, ' ') + 1;
  char *stop = strchr(start, ' ');
  int body = snprintf(out + 9, cap - 9, "%.*s%s%s", (int)(start - (line + 9)), line + 9, value,
                      stop ? stop : "");
  char crc[9];
  snprintf(crc, sizeof crc, "%08x", (unsigned)orch_crc32(out + 9, (size_t)body));
  memcpy(out, crc, 8);
  out[8] = ' ';
  return 9 + (size_t)body;
}

/* Integer fields out of range with a valid CRC (a count of 1e300, 2^31 sessions, a NaN
 * group) are refused before any conversion, counted as damaged, and passed to no reader; such
 * a line at the end is complete, not a torn tail. */
static void test_out_of_range(const char *dir) {
  orch_record r = rec(ORCH_REC_PLAN, 30, "0123456789abcdef0123456789abcdef", -1);
  r.count = 777;
  static const struct {
    int field;
    const char *value;
  } bad[] = {{6, "1e300"}, {6, "-1e19"}, {5, "2147483648"}, {3, "nan"}, {4, "-inf"}};
  char line[8192];
  orch_record back;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = with_field(&r, bad[i].field, bad[i].value, line, sizeof line);
    CHECK(orch_record_parse(line, n, &back) == -3, "field %d = %s is refused: %s", bad[i].field,
          bad[i].value, line);
  }
  size_t n = with_field(&r, 6, "9007199254740992", line, sizeof line);
  CHECK(orch_record_parse(line, n, &back) == 0 && back.count == 9007199254740992LL,
        "count 2^53 is in range");
  char path[1024], good[8192];
  snprintf(path, sizeof path, "%s/ledger.range.log", dir);
  size_t gn = orch_record_format(&r, good, sizeof good);
  good[gn] = '\0';
  append_raw(path, good);
  n = with_field(&r, 6, "1e300", line, sizeof line);
  memcpy(line + n, "\n", 2);
  append_raw(path, line);
  append_raw(path, good);
  append_raw(path, line);
  int64_t count = 0, damaged = -1, tail = 0;
  CHECK_OK(orch_ledger_read_file(path, count_cb, &count, NULL, &damaged, &tail));
  CHECK(count == 2 && damaged == 2 && tail == file_size(path),
        "out-of-range records skipped: %lld records, %lld damaged, tail %lld of %lld",
        (long long)count, (long long)damaged, (long long)tail, (long long)file_size(path));
  printf("out-of-range fields: ok\n");
}

static void write_job(const char *dir, const char *job, const orch_record *r, int n) {
  orch_ledger *l = NULL;
  CHECK_OK(orch_ledger_open(dir, job, &l));
  for (int i = 0; l && i < n; i++) CHECK_OK(orch_ledger_append(l, &r[i], 0));
  CHECK_OK(orch_ledger_close(&l));
}

static void test_replay(const char *dir) {
  const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
             *c = "cccccccccccccccccccccccccccccccc";
  orch_record j2[] = {rec(ORCH_REC_JOB, 200, NULL, 1), rec(ORCH_REC_START, 201, b, 0),
                      rec(ORCH_REC_FAILED, 202, c, -1)};
  snprintf(j2[0].text, sizeof j2[0].text, "jobB ranks=2 sweep=s");
  snprintf(j2[2].text, sizeof j2[2].text, "numeric: NaN loss");
  orch_record j1[] = {rec(ORCH_REC_JOB, 100, NULL, 2), rec(ORCH_REC_PLAN, 100, a, -1),
                      rec(ORCH_REC_PLAN, 100, b, -1),  rec(ORCH_REC_PLAN, 100, c, -1),
                      rec(ORCH_REC_START, 101, a, 0),  rec(ORCH_REC_PROGRESS, 102, a, 0),
                      rec(ORCH_REC_START, 101, b, 1),  rec(ORCH_REC_FINISHED, 103, a, 0),
                      rec(ORCH_REC_RETRY, 104, b, 1),  rec(ORCH_REC_START, 105, b, 0),
                      rec(ORCH_REC_START, 105, c, 1),  rec(ORCH_REC_PROGRESS, 106, c, 1)};
  snprintf(j1[0].text, sizeof j1[0].text, "jobA ranks=3 sweep=replay");
  snprintf(j1[1].text, sizeof j1[1].text, "synthetic\tsimplecil\t1\t");
  j1[1].seconds = 2.0;
  j1[7].seconds = 3.5;
  j1[7].final_acc = 50;
  /* written in the other order: files merge by their first record's time */
  write_job(dir, "zz-second", j2, 3);
  write_job(dir, "aa-first", j1, 12);
  orch_state *s = NULL;
  CHECK_OK(orch_state_load(dir, &s));
  if (!s) return;
  CHECK(s->n == 3 && s->n_files == 2 && s->n_records == 15, "3 trials, 2 files, 15 records");
  const orch_trial_state *ta = orch_state_find(s, a), *tb = orch_state_find(s, b),
                         *tc = orch_state_find(s, c);
  CHECK(ta && ta->status == ORCH_TRIAL_FINISHED && ta->measured && ta->seconds == 3.5 &&
            ta->cost == 2.0 && ta->plan_text && !strncmp(ta->plan_text, "synthetic\t", 10),
        "a: finished, measured 3.5 s, prior 2 s");
  /* b: retried once; its second attempt was cut off by job A's death before any boundary,
   * which is not charged (no CRASHED record: the job may have been killed from outside); job B
   * started it again and is still running (no END record) */
  CHECK(tb && tb->retries == 1 && tb->crashes == 0 && tb->status == ORCH_TRIAL_RUNNING,
        "b: 1 retry, no crash, running (retries %d crashes %d status %s)", tb ? tb->retries : -1,
        tb ? tb->crashes : -1, tb ? orch_trial_status_name(tb->status) : "?");
  CHECK(tc && tc->status == ORCH_TRIAL_FAILED && tc->crashes == 0 && tc->message &&
            !strcmp(tc->message, "numeric: NaN loss"),
        "c: failed with its message, not a crash (it had progressed)");
  CHECK(!strcmp(s->job.job_id, "jobB") && s->job.groups == 1 && s->job.group[0].trial >= 0 &&
            !strcmp(s->trials[s->job.group[0].trial].id, b) && !strcmp(s->job.sweep, "s"),
        "latest job B: group 0 runs b");
  orch_state_settle(s);
  CHECK(tb->status == ORCH_TRIAL_PENDING && tb->crashes == 0,
        "settled: b pending, still no crash charged");
  orch_state_destroy(&s);
  CHECK(s == NULL, "destroy sets NULL");
  printf("replay: ok\n");
}

static void write_line(const char *dir, const char *name, const char *line) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL, "create %s", path);
  if (f) {
    fputs(line, f);
    fclose(f);
  }
}

/* Runs `sig` in a child armed for trial `id`; returns the child's wait status. */
static int crash_child(const char *dir, const char *id, int sig) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    static volatile int boundaries = 5;
    orch_crash_install();
    if (orch_crash_arm(dir, id, 1, 2, 4242.5, 7, &boundaries) != SCL_OK) _exit(3);
    raise(sig);
    _exit(4);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

static int count_crash_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += !strncmp(e->d_name, "ledger.crash.", 13);
  if (d) closedir(d);
  return n;
}

static void test_crash_records(const char *dir) {
  const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  static volatile int boundaries = 3;
  char line[1024];
  orch_record r;
  CHECK_OK(orch_crash_arm(dir, a, 0, 2, 1700000000.125, 3, &boundaries));
  size_t n = orch_crash_format(line, sizeof line, 1700000001.5, 3, SIGSEGV);
  orch_crash_disarm();
  CHECK(n > 0 && line[n - 1] == '\n' && orch_record_parse(line, n - 1, &r) == 0 &&
            r.type == ORCH_REC_CRASHED && !strcmp(r.id, a) && r.group == 0 && r.attempt == 2 &&
            r.sessions == 3 && r.count == SIGSEGV && r.seconds == 1700000000.125 &&
            fabs(r.time - 1700000001.5) < 1e-6 && strstr(r.text, "SIGSEGV") &&
            strstr(r.text, "world rank 3"),
        "the handler's CRASHED line parses back: %.*s", (int)n, line);
  /* one job: a started, its two ranks crash in one attempt; a later job: a crashes again */
  orch_record j[] = {rec(ORCH_REC_JOB, 100, NULL, 1), rec(ORCH_REC_START, 101, a, 0),
                     rec(ORCH_REC_START, 101, b, 0), rec(ORCH_REC_FAILED, 102, b, 0)};
  snprintf(j[0].text, sizeof j[0].text, "job1 ranks=3 sweep=s");
  j[3].count = 1;
  snprintf(j[3].text, sizeof j[3].text, "gave up: resource fault: disk full");
  write_job(dir, "job1", j, 4);
  CHECK_OK(orch_crash_arm(dir, a, 0, 1, 101.25, 1, &boundaries));
  n = orch_crash_format(line, sizeof line, 101.5, 0, SIGSEGV);
  write_line(dir, "ledger.crash.h.1.1.log", line);
  n = orch_crash_format(line, sizeof line, 101.6, 0, SIGABRT);
  write_line(dir, "ledger.crash.h.2.1.log", line);
  CHECK_OK(orch_crash_arm(dir, a, 0, 1, 205.0, 1, &boundaries));
  n = orch_crash_format(line, sizeof line, 206, 2, SIGBUS);
  write_line(dir, "ledger.crash.h.3.2.log", line);
  orch_crash_disarm();
  orch_state *s = NULL;
  CHECK_OK(orch_state_load(dir, &s));
  const orch_trial_state *ta = s ? orch_state_find(s, a) : NULL,
                         *tb = s ? orch_state_find(s, b) : NULL;
  CHECK(ta && ta->crashes == 2 && ta->crash && strstr(ta->crash, "SIGBUS"),
        "two ranks crashing in one attempt count once, another attempt once more (%d): %s",
        ta ? ta->crashes : -1, ta && ta->crash ? ta->crash : "");
  CHECK(tb && tb->status == ORCH_TRIAL_FAILED && tb->retryable && tb->machine_failures == 1 &&
            tb->crashes == 0,
        "FAILED with count 1: retryable by the next job");
  orch_state_destroy(&s);
  /* the real handler, in a child process */
  char sub[512];
  snprintf(sub, sizeof sub, "%s/child", dir);
  mkdir(sub, 0777);
  int st = crash_child(sub, b, SIGKILL);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && count_crash_files(sub) == 0,
        "a SIGKILLed child leaves no crash record");
  st = crash_child(sub, b, SIGSEGV);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
        "the armed child still dies of SIGSEGV (status %x)", st);
  CHECK_OK(orch_state_load(sub, &s));
  tb = s ? orch_state_find(s, b) : NULL;
  CHECK(count_crash_files(sub) == 1 && tb && tb->crashes == 1 && tb->crash &&
            strstr(tb->crash, "SIGSEGV") && strstr(tb->crash, "world rank 7"),
        "a SIGSEGV child leaves one CRASHED record: %s", tb && tb->crash ? tb->crash : "");
  orch_state_destroy(&s);
  printf("crash records: ok\n");
}

/* CPU seconds of this process (user and system): unlike wall time, not lengthened by other
 * processes sharing the cores. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A ledger of n records (n/2 trials) in dir/<name>; the least CPU time of 3 replays of it. */
static double replay_cpu(const char *dir, const char *name, int n) {
  orch_ledger *l = NULL;
  char sub[1024];
  snprintf(sub, sizeof sub, "%s/%s", dir, name);
  mkdir(sub, 0777);
  CHECK_OK(orch_ledger_open(sub, "big", &l));
  if (!l) return NAN;
  orch_record r = rec(ORCH_REC_JOB, 1, NULL, 4);
  CHECK_OK(orch_ledger_append(l, &r, 0));
  for (int i = 1; i < n; i++) {
    r = rec(i % 2 ? ORCH_REC_START : ORCH_REC_FINISHED, 1 + i, NULL, i % 4);
    snprintf(r.id, sizeof r.id, "%032x", (unsigned)(i / 2) * 2654435761u);
    CHECK_OK(orch_ledger_append(l, &r, 0));
  }
  CHECK_OK(orch_ledger_close(&l));
  double best = INFINITY;
  for (int k = 0; k < 3; k++) {
    orch_state *s = NULL;
    double t0 = cpu_now();
    CHECK_OK(orch_state_load(sub, &s));
    double dt = cpu_now() - t0;
    CHECK(s && s->n_records == n && s->n == n / 2, "%d records, %d trials replayed", n, n / 2);
    if (dt < best) best = dt;
    orch_state_destroy(&s);
  }
  return best;
}

/* Replay is linear in the records: 4 times the records cost about 4 times the CPU time
 * (n log n: 4.6), a replay quadratic in them 16 times; the bound 8 lies between, on CPU time
 * (the least of 3 replays), so neither the machine's speed nor its load decides it. */
static void test_replay_speed(const char *dir) {
  const int n = 40000;
  double small = replay_cpu(dir, "quarter", n / 4), big = replay_cpu(dir, "full", n);
  CHECK(big < 8.0 * small, "replay of %d records: %.4f CPU s, of %d: %.4f CPU s (ratio %.1f)", n,
        big, n / 4, small, big / small);
  printf("replay of %d records: %.4f CPU s, of %d: %.4f CPU s (ratio %.1f)\n", n, big, n / 4, small,
         big / small);
}

static void check_victim(const char *path, const char *want) {
  char got[64] = "";
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(got, 1, sizeof got - 1, f) : 0;
  if (f) fclose(f);
  got[n] = '\0';
  CHECK(strcmp(got, want) == 0, "symlink target '%s' holds '%s', expected '%s'", path, got, want);
}

static void test_planted_links(const char *dir) {
  char victim[1024], link[1024];
  snprintf(victim, sizeof victim, "%s/victim.txt", dir);
  write_text(victim, "precious bytes\n");
  snprintf(link, sizeof link, "%s/ledger.evil.log", dir);
  CHECK(symlink("victim.txt", link) == 0, "cannot plant '%s': %s", link, strerror(errno));
  orch_ledger *l = NULL;
  CHECK_FAILS(orch_ledger_open(dir, "evil", &l), SCL_ERR_IO, "ledger.evil.log: is a symbolic link");
  if (l) CHECK_OK(orch_ledger_close(&l));
  check_victim(victim, "precious bytes\n");
  snprintf(link, sizeof link, "%s/lock", dir);
  CHECK(symlink("victim.txt", link) == 0, "cannot plant '%s': %s", link, strerror(errno));
  orch_rundir rd;
  CHECK_FAILS(orch_rundir_open(dir, &rd), SCL_ERR_IO, "/lock: is a symbolic link");
  orch_rundir_close(&rd);
  check_victim(victim, "precious bytes\n");
  printf("planted symlinks (ledger, lock): refused, targets intact: ok\n");
}

int main(void) {
  char dir[256], sub[300];
  scratch_dir("ledger_test", dir, sizeof dir);
  test_format();
  snprintf(sub, sizeof sub, "%s/torn", dir);
  mkdir(sub, 0777);
  test_torn_tail(sub);
  snprintf(sub, sizeof sub, "%s/range", dir);
  mkdir(sub, 0777);
  test_out_of_range(sub);
  snprintf(sub, sizeof sub, "%s/replay", dir);
  mkdir(sub, 0777);
  test_replay(sub);
  snprintf(sub, sizeof sub, "%s/crash", dir);
  mkdir(sub, 0777);
  test_crash_records(sub);
  snprintf(sub, sizeof sub, "%s/speed", dir);
  mkdir(sub, 0777);
  test_replay_speed(sub);
  snprintf(sub, sizeof sub, "%s/links", dir);
  mkdir(sub, 0777);
  test_planted_links(sub);
  return finish("test_ledger");
}
