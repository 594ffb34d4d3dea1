/* core.h: errors, logging, aligned memory, random numbers, timers and content hashing.
 *
 * Everything in safecl that can fail returns an scl_err (0 = OK). The first function to see a
 * failure calls SCL_ERROR(code, fmt, ...), which records one message naming the file, key or
 * tensor at fault; every caller above it wraps the call in SCL_CALL(...), which appends one
 * "at file:line func" frame and returns the code upward, so a failure prints a short traceback
 * (PETSc's PetscCall pattern). A check on input is one line, SCL_CHECK(cond, code, fmt, ...).
 * The macros below are the only code that adds frames. A recovery point (code that handles a
 * failure and carries on) takes the error with scl_error_take, which hands it the code and the
 * message and clears them. Nothing below main() exits or aborts.
 *
 * Randomness: SCL's training randomness is counter-based (Philox4x32-10), keyed by (seed,
 * stream) with counters (epoch, sample index, draw), so a draw never depends on which rank or
 * batch handles a sample. MT19937 exists only to reproduce NumPy's legacy permutation for the
 * class orders of the reference toolboxes. */
#ifndef SAFECL_CORE_H
#define SAFECL_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */

typedef int scl_err;
enum {
  SCL_OK = 0,
  SCL_ERR_NOMEM,    /* allocation failed */
  SCL_ERR_IO,       /* a file could not be opened, read or written */
  SCL_ERR_FORMAT,   /* a file's contents are malformed (weights, images, datasets, HDF5) */
  SCL_ERR_ARG,      /* bad argument or configuration value */
  SCL_ERR_MPI,      /* an MPI call failed */
  SCL_ERR_HDF5,     /* an HDF5 call failed */
  SCL_ERR_LAPACK,   /* LAPACK/ScaLAPACK reported info != 0 */
  SCL_ERR_NUMERIC,  /* NaN/Inf where a finite value is required */
  SCL_ERR_STOP,     /* a stop was requested (signal); not a failure of the work itself */
  SCL_ERR_INTERNAL, /* a broken invariant: a bug in safecl */
  SCL_ERR_RESOURCE, /* the machine failed a write or read: disk full, quota, I/O error */
  SCL_ERR_COUNT
};

/* The code for a failed system call with this errno: SCL_ERR_RESOURCE when the machine is at
 * fault (ENOSPC, EDQUOT, EIO, ENOMEM: a sweep runs such a trial again in its next job, see
 * docs/architecture.md 7), else SCL_ERR_IO. */
scl_err scl_errno_code(int errnum);

#if defined(__GNUC__)
#define SCL_NODISCARD __attribute__((warn_unused_result))
#define SCL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SCL_NODISCARD
#define SCL_PRINTF(f, a)
#endif

/* Records the root-cause message (the first since scl_error_clear) and returns code. */
scl_err scl_error_raise(scl_err code, const char *file, int line, const char *func, const char *fmt,
                        ...) SCL_PRINTF(5, 6);
/* Appends a traceback frame; returns code unchanged. */
scl_err scl_error_trace(scl_err code, const char *file, int line, const char *func);
/* The root-cause message of the current error ("" if none); owned by core. */
const char *scl_error_message(void);
/* The message plus traceback frames, one per line; owned by core. */
const char *scl_error_traceback(void);
/* Forgets the current error (tests between cases; recovery points use scl_error_take). */
void scl_error_clear(void);
/* Takes the current error: copies its root-cause message into message (size bytes, truncated,
 * NUL-terminated; NULL or size 0: not copied), clears it and returns its code (SCL_OK and "" if
 * none was pending). */
scl_err scl_error_take(char *message, size_t size);
#define SCL_ERROR_MESSAGE_MAX 2048 /* bytes of a root-cause message, NUL included */
const char *scl_error_name(scl_err code);

#define SCL_ERROR(code, ...) scl_error_raise((code), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Adds a frame for this line to a failure already raised and evaluates to code: for the return
 * after cleanup, `return SCL_TRACE(err);`. */
#define SCL_TRACE(code) scl_error_trace((code), __FILE__, __LINE__, __func__)

/* If cond is false, raise SCL_ERROR(code, fmt, ...) and return the code. */
#define SCL_CHECK(cond, code, ...)                      \
  do {                                                  \
    if (!(cond)) return SCL_ERROR((code), __VA_ARGS__); \
  } while (0)

/* Call a function returning scl_err; on failure add a frame and return the code. */
#define SCL_CALL(expr)                                            \
  do {                                                            \
    scl_err scl_call_err_ = (expr);                               \
    if (scl_call_err_ != SCL_OK) return SCL_TRACE(scl_call_err_); \
  } while (0)

/* Same, but store the code in `err` and jump to `label` for cleanup. */
#define SCL_CALL_GOTO(err, expr, label) \
  do {                                  \
    (err) = (expr);                     \
    if ((err) != SCL_OK) {              \
      SCL_TRACE(err);                   \
      goto label;                       \
    }                                   \
  } while (0)

/* Raise an error into `err` and jump to `label`. */
#define SCL_ERROR_GOTO(err, label, code, ...) \
  do {                                        \
    (err) = SCL_ERROR((code), __VA_ARGS__);   \
    goto label;                               \
  } while (0)

/* If cond is false, raise an error into `err` and jump to `label`. */
#define SCL_CHECK_GOTO(err, label, cond, code, ...)               \
  do {                                                            \
    if (!(cond)) SCL_ERROR_GOTO(err, label, (code), __VA_ARGS__); \
  } while (0)

/* Overflow-checked size arithmetic for element counts taken from files: return non-zero on
 * overflow (and *out is then unspecified), 0 when *out holds the exact result. */
int scl_mul_overflows(size_t a, size_t b, size_t *out);
int scl_add_overflows(size_t a, size_t b, size_t *out);

/* ---------------------------------------------------------------------------------------- */
/* Logging: "<UTC time> [safecl r<rank> <trial>] level: message" on stderr, the time as ISO  */
/* 8601 with milliseconds and a trailing Z ("2026-12-01T20:06:44.123Z").                      */

typedef enum {
  SCL_LOG_DEBUG = 0,
  SCL_LOG_INFO,
  SCL_LOG_WARN,
  SCL_LOG_ERROR,
  SCL_LOG_QUIET
} scl_log_level;

void scl_log_set_rank(int rank);              /* -1: no rank shown (default) */
void scl_log_set_trial(const char *trial_id); /* NULL clears; copied */
void scl_log_set_level(
    scl_log_level level); /* default INFO; env SAFECL_LOG=debug|info|warn|error */
scl_log_level scl_log_get_level(void);
void scl_log(scl_log_level level, const char *fmt, ...) SCL_PRINTF(2, 3);
/* Prints the current error at ERROR level: its message, and the traceback's code locations at
 * level DEBUG only (SAFECL_LOG=debug). */
void scl_log_error_traceback(void);
/* Appends every later log line to `path` as well (created if missing; a trial's trial.log)
 * until scl_log_close_file; one file at a time (opening another closes the first). A write
 * that fails closes the file with a warning on stderr. SCL_ERR_IO naming the path if it cannot
 * be opened. */
SCL_NODISCARD scl_err scl_log_open_file(const char *path);
void scl_log_close_file(void);
/* A log line written to the open log file only (nothing without one), e.g. the periodic
 * progress lines that a terminal shows as a status line instead. */
void scl_log_file(scl_log_level level, const char *fmt, ...) SCL_PRINTF(2, 3);
/* 1 if stderr is a terminal. */
int scl_log_tty(void);
/* On a terminal at level INFO or below: shows `text` as one line redrawn in place under the
 * log ("\r" and erase-to-end-of-line), cut to the terminal's width; log lines clear it and draw
 * it again. Does nothing when stderr is not a terminal. NULL removes it. Never in the log file. */
void scl_log_status(const char *text);

#define SCL_DEBUG(...) scl_log(SCL_LOG_DEBUG, __VA_ARGS__)
#define SCL_INFO(...) scl_log(SCL_LOG_INFO, __VA_ARGS__)
#define SCL_WARN(...) scl_log(SCL_LOG_WARN, __VA_ARGS__)

/* ---------------------------------------------------------------------------------------- */
/* Memory                                                                                    */

#define SCL_ALIGN 64

/* Two allocator families; every pointer goes back to the family it came from.
 *  - scl_alloc / scl_calloc -> scl_free: the buffers computation runs over: tensors, features,
 *    matrices, label and index arrays, scratch, raw file and message bytes. They are 64-byte
 *    aligned (SIMD loads, BLAS) and a failure names the buffer and its size. src/model and
 *    src/nn allocate only these.
 *  - malloc / calloc / realloc / strdup -> free: bookkeeping: the struct an x_create returns,
 *    strings, and tables of records or pointers, including anything grown with realloc (an
 *    aligned block cannot be reallocated).
 * Memory a library hands out goes back the library's way (H5free_memory, cJSON_Delete, ...). */

/* 64-byte aligned allocation; `what` names the buffer in the out-of-memory message. */
SCL_NODISCARD scl_err scl_alloc(size_t bytes, const char *what, void **out);
/* Same, zero-filled. */
SCL_NODISCARD scl_err scl_calloc(size_t bytes, const char *what, void **out);
void scl_free(void *p);
/* A scratch buffer of scl_alloc's family that grows on demand: *buf (NULL and *bytes = 0 at
 * first) is kept when *bytes >= need, else freed and allocated again at exactly need bytes; its
 * contents are not kept. On failure *buf is NULL and *bytes 0. */
SCL_NODISCARD scl_err scl_alloc_grow(void **buf, size_t *bytes, size_t need, const char *what);

/* n floats rounded up to whole 64-byte lines (a multiple of 16), so that buffers carved one after
 * another from an aligned block each stay aligned. */
static inline int64_t scl_pad_floats(int64_t n) { return (n + 15) / 16 * 16; }

/* ---------------------------------------------------------------------------------------- */
/* Counter-based RNG: Philox4x32-10 (Salmon et al., SC'11).                                  */

void scl_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* A draw stream identified by (seed, stream, epoch, index). Draw k of the stream is a pure
 * function of those four numbers and k, so it does not depend on batch or rank. */
typedef struct scl_rng {
  uint32_t key[2];
  uint32_t counter[4]; /* [0] block number, [1] index, [2] epoch, [3] stream */
  uint32_t block[4];
  int pos; /* next unused word of block (4 = exhausted) */
} scl_rng;

/* Well-known stream numbers, so that no two uses share draws. */
enum {
  SCL_STREAM_INIT = 1,     /* initial values of new parameters */
  SCL_STREAM_SHUFFLE = 2,  /* epoch shuffles */
  SCL_STREAM_AUGMENT = 3,  /* training transforms of one sample */
  SCL_STREAM_DROPOUT = 4,  /* dropout masks of one sample */
  SCL_STREAM_PROJECT = 5,  /* random-projection matrices */
  SCL_STREAM_SPLIT = 6,    /* validation splits */
  SCL_STREAM_SYNTHETIC = 7 /* the synthetic dataset */
};
/* SLCA's Gaussian class samples and their shuffles (docs/methods.md k.4). */
enum { SCL_STREAM_GAUSSIAN = 8 };

void scl_rng_init(scl_rng *rng, uint64_t seed, uint32_t stream, uint32_t epoch, uint32_t index);
uint32_t scl_rng_u32(scl_rng *rng);
double scl_rng_uniform(scl_rng *rng); /* [0, 1), 53 bits */
float scl_rng_uniformf(scl_rng *rng); /* [0, 1), 24 bits */
double scl_rng_normal(scl_rng *rng);  /* N(0, 1), Box-Muller */
/* Uniform integer in [0, bound) by Lemire's multiply-shift with rejection (unbiased);
 * bound >= 1. */
uint32_t scl_rng_below(scl_rng *rng, uint32_t bound);
/* perm = a permutation of [0, n) that is a pure function of (seed, stream, epoch): Fisher-Yates
 * from the last position down, swap indices from the stream (seed, stream, epoch, 0). The same
 * on every rank. SCL_ERR_ARG if n < 0 or n >= 2^32. */
SCL_NODISCARD scl_err scl_rng_permutation(uint64_t seed, uint32_t stream, uint32_t epoch, int64_t n,
                                          int64_t *perm);

/* ---------------------------------------------------------------------------------------- */
/* MT19937 and NumPy's legacy RandomState.permutation (docs/methods.md a.2).                 */

typedef struct scl_mt19937 {
  uint32_t mt[624];
  int mti;
} scl_mt19937;

void scl_mt19937_seed(scl_mt19937 *mt, uint32_t seed); /* init_genrand */
uint32_t scl_mt19937_u32(scl_mt19937 *mt);
/* order[k] = original label that becomes label k; identical to
 * np.random.seed(seed); np.random.permutation(n). */
SCL_NODISCARD scl_err scl_np_permutation(uint32_t seed, int64_t n, int64_t *order);

/* ---------------------------------------------------------------------------------------- */
/* Timers (docs/conventions.md 16)                                                           */

#define SCL_TIMER_LIST(X) X(setup) X(data) X(forward) X(backward) X(sync) X(optim) X(solve) X(io)
typedef enum {
#define SCL_TIMER_ENUM(name) SCL_TIMER_##name,
  SCL_TIMER_LIST(SCL_TIMER_ENUM)
#undef SCL_TIMER_ENUM
      SCL_TIMER_COUNT
} scl_timer_id;

typedef struct scl_timers {
  double total[SCL_TIMER_COUNT];
  double started[SCL_TIMER_COUNT];
} scl_timers;

double scl_now(void); /* monotonic seconds */
void scl_timers_reset(scl_timers *t);
void scl_timer_start(scl_timers *t, scl_timer_id id);
void scl_timer_stop(scl_timers *t, scl_timer_id id);
const char *scl_timer_name(scl_timer_id id);

/* ---------------------------------------------------------------------------------------- */
/* Content hashing: XXH3-128                                                                 */

typedef struct scl_hash {
  uint64_t hi, lo;
} scl_hash;

typedef struct scl_hasher scl_hasher;

scl_hash scl_hash_bytes(const void *data, size_t len);
SCL_NODISCARD scl_err scl_hasher_create(scl_hasher **out);
void scl_hasher_update(scl_hasher *h, const void *data, size_t len);
scl_hash scl_hasher_digest(const scl_hasher *h);
void scl_hasher_destroy(scl_hasher **h);
/* 32 lowercase hex digits plus NUL. */
void scl_hash_hex(scl_hash h, char out[33]);
/* Hash of a whole file (streamed); a regular file only, opened as scl_open_regular does, with
 * `what` naming it in messages. */
SCL_NODISCARD scl_err scl_hash_file(const char *path, const char *what, scl_hash *out);

/* ---------------------------------------------------------------------------------------- */
/* Files from user input (docs/architecture.md 7)                                            */

/* Opens path read-only if it is a regular file (symlinks followed); a FIFO, a device, a directory
 * or a socket is refused without blocking and without being read. `what` names the file in the
 * message (a key such as "backbone.weights", or "list file"), with the path and what it is
 * ("backbone.weights /tmp/w is a FIFO, not a regular file"). SCL_ERR_IO, as for a file that
 * cannot be opened. The caller owns the descriptor (close) or the stream (fclose). */
SCL_NODISCARD scl_err scl_open_regular(const char *path, const char *what, int *fd);
SCL_NODISCARD scl_err scl_fopen_regular(const char *path, const char *what, FILE **f);
/* "a FIFO", "a character device", "a directory", ... for the type bits of a st_mode; static. */
const char *scl_file_kind(unsigned mode);

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */

/* Code version and build information for provenance records; static strings. */
const char *scl_version(void); /* e.g. "0.1.0 (git abc123)" */
/* The ISA of src/nn's dispatched kernels in this process: "x86-64-v4" or "x86-64-v3" (portable
 * build), "native" (-DSAFECL_NATIVE=ON) or "default" (no dispatch on this machine). */
const char *scl_simd_isa(void);

#endif /* SAFECL_CORE_H */
