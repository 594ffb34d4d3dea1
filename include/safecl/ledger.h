/* ledger.h: the sweep's append-only ledger and its replay (docs/architecture.md section 6).
 *
 * World rank 0 of a sweep is the only writer. Each job writes its own file,
 * RUN_DIR/ledger.<jobid>.log (a requeued SLURM job keeps its id and appends to the same file);
 * readers merge every ledger.*.log of the run directory, ordered by each file's first record.
 * The one exception to the single writer is a CRASHED record (below), which a dying worker
 * writes into a file of its own.
 *
 * Record format: one line of text per record,
 *   <crc> <TYPE> <time> <id> <group> <attempt> <sessions> <count> <seconds> <final> <avg>
 *   <val> <text>\n
 * separated by single spaces, where crc is the CRC-32 (zlib's polynomial, 8 lowercase hex
 * digits) of everything after "<crc> " up to the newline; time is Unix seconds; id is a trial id
 * (32 hex digits) or "-"; numbers are printed with %.17g (exact round trip; "nan" allowed); text
 * is the rest of the line with '\\', tab and newline escaped as \\\\, \\t and \\n. A line that is
 * unterminated or fails its CRC is damaged: at the end of a file it is a torn tail (the writer
 * died mid-append) and is cut off before the file is appended to again; elsewhere it is skipped
 * with a warning. Unknown record types are skipped, so newer writers stay readable.
 *
 * Durability: every record is one write(2) to an O_APPEND descriptor (a killed process loses
 * nothing it wrote), except the PLAN records of a job's start, written 1 MiB at a time
 * (orch_ledger_gather: the next job writes lost ones again); records whose loss would cost work (outcomes, job starts and stops) are
 * followed by fsync. The ledger is history, not truth: a finished trial is one whose
 * trials/<id>/trial.h5 exists, and replay reconciles the two. */
#ifndef SAFECL_LEDGER_H
#define SAFECL_LEDGER_H

#include <stdint.h>
#include <stdio.h>

#include "safecl/core.h"

#define ORCH_LEDGER_TEXT_MAX 2048

/* The record types; fields a type does not use are 0 (the id "-"):
 *   JOB       a job (or a restart of it) begins: group = groups, attempt = group size,
 *             count = SLURM restart count, text = "<job id> ranks=<P> sweep=<name>"
 *   PLAN      a trial of the sweep: count = plan index, seconds = prior expected cost,
 *             attempt = 1 if its backbone has random weights (no backbone.weights), 2 if not
 *             (0 in older ledgers: the next job writes the trial's PLAN record again),
 *             text = dataset \t method \t seed ("-" if none) \t settings ('\n'-separated)
 *   START     a group starts (or resumes) a trial: group, attempt
 *   PROGRESS  a group passed a boundary (session or training step): sessions = boundaries
 *             passed in this attempt (the first report of an attempt, then one per 30 s)
 *   FINISHED  seconds, final/avg/val accuracy; text "" when measured by a run, else
 *             "skipped", "reconciled" (read back from trial.h5) or "dry-run"
 *   RETRY     a transient failure, the trial runs again: attempt, text = "<error>: <message>"
 *   FAILED    a permanent failure: attempt, text = "<error>: <message>"; count = 1 when the
 *             machine was at fault (SCL_ERR_RESOURCE, SCL_ERR_NOMEM): the next job of the sweep
 *             runs the trial again, at most sweep.max_retries such jobs (0 in older ledgers)
 *   STOPPED   the trial checkpointed and stopped on request (it resumes next time)
 *   STOP      the coordinator got a signal: text = "signal <n>"
 *   END       the coordinator is done: count = exit status, text = complete|stopped|error|planned
 *   CRASHED   a process running the trial died of a fatal signal (SIGSEGV, SIGBUS, SIGFPE,
 *             SIGILL, SIGABRT), written by that process's signal handler into a file of its own,
 *             RUN_DIR/ledger.crash.<host>.<pid>.<stamp>.log: group, attempt, sessions =
 *             boundaries passed in the attempt, count = the signal number, seconds = the
 *             attempt's stamp (Unix time its group's rank 0 received the trial: the records of
 *             several ranks of one attempt count once), text = "<signal> in world rank <r> on
 *             <host> (pid <p>)". Only these count against sweep.max_crashes: a job killed from
 *             outside (SIGKILL, node loss, the OOM killer) leaves none and is never charged.
 */
#define ORCH_REC_LIST(X) \
  X(JOB)                 \
  X(PLAN) X(START) X(PROGRESS) X(FINISHED) X(RETRY) X(FAILED) X(STOPPED) X(STOP) X(END) X(CRASHED)
typedef enum {
  ORCH_REC_NONE = 0,
#define ORCH_REC_ENUM(name) ORCH_REC_##name,
  ORCH_REC_LIST(ORCH_REC_ENUM)
#undef ORCH_REC_ENUM
      ORCH_REC_COUNT
} orch_rec_type;

typedef struct orch_record {
  orch_rec_type type;
  double time;
  char id[33]; /* "" for job-level records */
  int32_t group, attempt, sessions;
  int64_t count;
  double seconds, final_acc, avg_acc, val_acc;
  char text[ORCH_LEDGER_TEXT_MAX]; /* unescaped; longer texts are cut */
} orch_record;

const char *orch_rec_name(orch_rec_type t);
/* CRC-32 as zlib.crc32 computes it (so Python tools can read and write ledgers). */
uint32_t orch_crc32(const void *data, size_t len);

/* Formats one record as its line (with the newline) into buf; returns the length, or 0 if it
 * does not fit (cap >= 3 * ORCH_LEDGER_TEXT_MAX + 512 always fits). */
size_t orch_record_format(const orch_record *r, char *buf, size_t cap);
/* Parses one line (without its newline). 0 if valid; -1 if damaged (CRC, syntax); -2 if the
 * CRC is right but the type is unknown; -3 if the CRC is right but an integer field (group,
 * attempt, sessions, count) is outside its type's range. */
int orch_record_parse(const char *line, size_t len, orch_record *r);

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                    */

typedef struct orch_ledger orch_ledger;

/* Opens RUN_DIR/ledger.<job_id>.log for appending, creating it, after cutting off a torn tail
 * left by a previous writer of the same file. *out is owned by the caller (orch_ledger_close). */
SCL_NODISCARD scl_err orch_ledger_open(const char *run_dir, const char *job_id, orch_ledger **out);
/* Appends one record (time is filled in when 0); sync = 1 fsyncs the file afterwards. */
SCL_NODISCARD scl_err orch_ledger_append(orch_ledger *l, const orch_record *r, int sync);
/* From now until orch_ledger_flush, appends are gathered in memory and written 1 MiB at a time
 * instead of one write() each: for a burst of records that may be lost together if the process
 * dies, as PLAN records may (the next job writes them again). */
void orch_ledger_gather(orch_ledger *l);
/* Writes what was gathered and ends gathering (sync and close flush too). */
SCL_NODISCARD scl_err orch_ledger_flush(orch_ledger *l);
SCL_NODISCARD scl_err orch_ledger_sync(orch_ledger *l);
/* Syncs and closes. Accepts NULL and *l == NULL; sets *l to NULL. */
SCL_NODISCARD scl_err orch_ledger_close(orch_ledger **l);
const char *orch_ledger_path(const orch_ledger *l);

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                    */

/* Calls fn for every valid record of one file, in order. *n_damaged counts skipped damaged
 * lines; *tail is the byte offset where a torn tail starts (the file size if none). */
typedef scl_err (*orch_record_fn)(void *ctx, const orch_record *r, const char *path);
SCL_NODISCARD scl_err orch_ledger_read_file(const char *path, orch_record_fn fn, void *ctx,
                                            int64_t *n_records, int64_t *n_damaged, int64_t *tail);
/* Every ledger.*.log of run_dir, sorted by the time of each file's first record, then name.
 * *paths is an array of *n strings owned by the caller: orch_ledger_paths_free. */
SCL_NODISCARD scl_err orch_ledger_list(const char *run_dir, char ***paths, int *n);
void orch_ledger_paths_free(char **paths, int n);

/* Escapes text for a record field ('\\', tab, newline); returns the length written (cut to
 * fit cap including the NUL). The inverse is applied by orch_record_parse. */
size_t orch_ledger_escape(const char *in, char *out, size_t cap);

/* ---------------------------------------------------------------------------------------- */
/* Crash records (src/orch/crash.c)                                                           */

/* Installs the fatal-signal handler (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) of a worker
 * process, on an alternate stack. The handler does nothing but re-raise with the default action
 * until orch_crash_arm names a trial. */
void orch_crash_install(void);
/* From now until orch_crash_disarm, a fatal signal appends a CRASHED record for this attempt
 * to RUN_DIR/ledger.crash.<host>.<pid>.<stamp>.log (opened in the handler through a directory
 * descriptor opened here; everything but the time, the signal and the boundary count is
 * formatted here). *boundaries is read by the handler (shared, not owned: it must live until
 * disarm). Fails if RUN_DIR cannot be opened. */
SCL_NODISCARD scl_err orch_crash_arm(const char *run_dir, const char *id, int group, int attempt,
                                     double stamp, int world_rank, const volatile int *boundaries);
void orch_crash_disarm(void);
/* Formats a CRASHED line as the handler does (async-signal-safe: no allocation, no stdio);
 * returns its length, 0 if it does not fit. For the handler and tests. */
size_t orch_crash_format(char *buf, size_t cap, double time_s, int sessions, int sig);

#endif /* SAFECL_LEDGER_H */
