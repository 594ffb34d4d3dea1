/* h5_whole.c: the whole-file checksum in the HDF5 user block, checked with plain POSIX reads
 * before HDF5 parses a byte of the file.
 *
 * HDF5 1.10's parser trusts what it reads: a damaged object header can crash it (SIGSEGV in
 * H5A__attr_release_table, reached from H5Aiterate2) before the per-dataset and attribute
 * checksums of h5_checksum.c are looked at. So every file published by h5_file_create_atomic
 * or h5_file_create_atomic_group is created with a user block of H5_WHOLE_BLOCK bytes (HDF5
 * then starts its superblock after it and never reads it), and at commit, after the close and
 * before the rename that publishes it, the block gets a record (little-endian):
 *   0   8  magic "SAFECLWF"
 *   8   4  format version (1)
 *   12  4  user block size (512)
 *   16  8  file length in bytes, user block included
 *   24  8  XXH3-64 of the bytes after the user block
 *   32  8  XXH3-64 of the whole user block with these 8 bytes zeroed
 *   40     zeros, up to the second copy of the magic at 504
 * A file is taken for one of ours if either copy of the magic is there, so that one damaged
 * byte cannot turn a checked file into an unchecked one; it is then read once, and a length or
 * hash that does not match refuses it, naming the file. Files with neither copy (written before
 * this record, or by h5py) are left to HDF5 and the per-dataset checksums. The cost is one
 * sequential read of the file at commit and one at its first open for reading in a process
 * (later opens of a settled file this process found intact read nothing: whole_seen below). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "h5_internal.h"

#define WHOLE_VERSION 1u
#define WHOLE_TRAILER (H5_WHOLE_BLOCK - 8)
#define WHOLE_CHUNK ((size_t)1 << 20)

static const char whole_magic[8] = {'S', 'A', 'F', 'E', 'C', 'L', 'W', 'F'};

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* XXH3-64 of the user block with the record's own hash (bytes 32..39) taken as zeros. */
static uint64_t block_hash(const unsigned char *block) {
  unsigned char copy[H5_WHOLE_BLOCK];
  memcpy(copy, block, sizeof copy);
  memset(copy + 32, 0, 8);
  return XXH3_64bits(copy, sizeof copy);
}

static scl_err read_full(int fd, void *buf, size_t len, off_t at, const char *path) {
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, at);
    if (n < 0 && errno == EINTR) continue;
    SCL_CHECK(n > 0, n < 0 ? scl_errno_code(errno) : SCL_ERR_IO, "HDF5 file '%s': cannot read: %s",
              path, n < 0 ? strerror(errno) : "shorter than it was a moment ago");
    p += n;
    len -= (size_t)n;
    at += n;
  }
  return SCL_OK;
}

/* XXH3-64 of bytes [H5_WHOLE_BLOCK, size) of fd. */
static scl_err body_hash(int fd, off_t size, const char *path, uint64_t *out) {
  unsigned char *buf = malloc(WHOLE_CHUNK);
  XXH3_state_t *st = XXH3_createState();
  scl_err err = SCL_OK;
  if (!buf || !st || XXH3_64bits_reset(st) != XXH_OK)
    err = SCL_ERROR(SCL_ERR_NOMEM, "HDF5 file '%s': whole-file checksum buffer", path);
  for (off_t at = H5_WHOLE_BLOCK; !err && at < size;) {
    size_t n = (size_t)(size - at) < WHOLE_CHUNK ? (size_t)(size - at) : WHOLE_CHUNK;
    err = read_full(fd, buf, n, at, path);
    if (!err && XXH3_64bits_update(st, buf, n) != XXH_OK)
      err = SCL_ERROR(SCL_ERR_IO, "HDF5 file '%s': whole-file checksum failed", path);
    at += (off_t)n;
  }
  if (!err) *out = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  free(buf);
  return err;
}

hid_t h5_whole_fcpl(void) {
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (fcpl >= 0 && H5Pset_userblock(fcpl, H5_WHOLE_BLOCK) < 0) {
    H5Pclose(fcpl);
    return -1;
  }
  return fcpl;
}

scl_err h5_whole_seal(const char *tmp_path, const char *path) {
  int fd = open(tmp_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  SCL_CHECK(fd >= 0, scl_errno_code(errno), "HDF5 file '%s': cannot open '%s' to checksum it: %s",
            path, tmp_path, strerror(errno));
  struct stat st;
  scl_err err = SCL_OK;
  uint64_t body = 0;
  if (fstat(fd, &st) != 0)
    err = SCL_ERROR(scl_errno_code(errno), "HDF5 file '%s': cannot stat '%s': %s", path, tmp_path,
                    strerror(errno));
  else if (st.st_size <= H5_WHOLE_BLOCK)
    err = SCL_ERROR(SCL_ERR_IO,
                    "HDF5 file '%s': '%s' has %lld bytes, no room for HDF5 after its "
                    "%d-byte user block",
                    path, tmp_path, (long long)st.st_size, H5_WHOLE_BLOCK);
  if (!err) err = body_hash(fd, st.st_size, tmp_path, &body);
  if (!err) {
    unsigned char block[H5_WHOLE_BLOCK];
    memset(block, 0, sizeof block);
    memcpy(block, whole_magic, 8);
    put_u32(block + 8, WHOLE_VERSION);
    put_u32(block + 12, H5_WHOLE_BLOCK);
    put_u64(block + 16, (uint64_t)st.st_size);
    put_u64(block + 24, body);
    memcpy(block + WHOLE_TRAILER, whole_magic, 8);
    put_u64(block + 32, block_hash(block));
    ssize_t n = pwrite(fd, block, sizeof block, 0);
    if (n != (ssize_t)sizeof block)
      err = SCL_ERROR(n < 0 ? scl_errno_code(errno) : SCL_ERR_IO,
                      "HDF5 file '%s': cannot write its checksum record into '%s': %s", path,
                      tmp_path, n < 0 ? strerror(errno) : "short write");
  }
  if (close(fd) != 0 && !err)
    err = SCL_ERROR(scl_errno_code(errno), "HDF5 file '%s': cannot close '%s': %s", path, tmp_path,
                    strerror(errno));
  errno = 0;
  return err;
}

/* Files this process has found sealed and intact, known by what stat says of them. A file is
 * remembered only when it was last changed over WHOLE_SETTLED seconds before its check, so that
 * any later write gives it another mtime or ctime even where the kernel's file clock is coarse:
 * a pack that every trial of a sweep worker opens (twice, one split each) is read whole once. */
#define WHOLE_SEEN 32
#define WHOLE_SETTLED 2
typedef struct {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
} whole_identity;
static whole_identity whole_seen[WHOLE_SEEN];
static int whole_n_seen, whole_next;

static whole_identity identity_of(const struct stat *st) {
  return (whole_identity){st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim};
}

static int same_identity(const whole_identity *a, const whole_identity *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
         a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static int seen_sealed(const struct stat *st) {
  whole_identity id = identity_of(st);
  for (int i = 0; i < whole_n_seen; i++)
    if (same_identity(&whole_seen[i], &id)) return 1;
  return 0;
}

static void remember_sealed(const struct stat *st) {
  struct timespec now;
  if (clock_gettime(CLOCK_REALTIME, &now) != 0) return;
  time_t changed =
      st->st_mtim.tv_sec > st->st_ctim.tv_sec ? st->st_mtim.tv_sec : st->st_ctim.tv_sec;
  if (now.tv_sec - changed <= WHOLE_SETTLED) return;
  whole_seen[whole_next] = identity_of(st);
  whole_next = (whole_next + 1) % WHOLE_SEEN;
  if (whole_n_seen < WHOLE_SEEN) whole_n_seen++;
}

scl_err h5_whole_check(const char *path, int *sealed) {
  *sealed = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { /* a missing or closed file is left to HDF5's own message */
    errno = 0;
    return SCL_OK;
  }
  struct stat st;
  unsigned char block[H5_WHOLE_BLOCK];
  scl_err err = SCL_OK;
  if (fstat(fd, &st) != 0 || st.st_size < H5_WHOLE_BLOCK) {
    close(fd);
    errno = 0;
    return SCL_OK; /* too short to carry the record: HDF5 says what it is */
  }
  if (seen_sealed(&st)) {
    close(fd);
    *sealed = 1;
    return SCL_OK;
  }
  err = read_full(fd, block, sizeof block, 0, path);
  if (err) {
    close(fd);
    return err;
  }
  if (memcmp(block, whole_magic, 8) != 0 && memcmp(block + WHOLE_TRAILER, whole_magic, 8) != 0) {
    close(fd);
    return SCL_OK; /* no record: a file written before it, or by another tool */
  }
  uint64_t length = get_u64(block + 16), body = 0;
  if (get_u64(block + 32) != block_hash(block))
    err = SCL_ERROR(SCL_ERR_FORMAT,
                    "HDF5 file '%s': whole-file checksum mismatch: damaged (its checksum record "
                    "in the first %d bytes is itself damaged)",
                    path, H5_WHOLE_BLOCK);
  else if (get_u32(block + 8) != WHOLE_VERSION || get_u32(block + 12) != H5_WHOLE_BLOCK)
    err = SCL_ERROR(SCL_ERR_FORMAT,
                    "HDF5 file '%s': whole-file checksum record of version %u (block %u bytes); "
                    "this safecl reads version %u (block %d bytes)",
                    path, get_u32(block + 8), get_u32(block + 12), WHOLE_VERSION, H5_WHOLE_BLOCK);
  else if (length != (uint64_t)st.st_size)
    err = SCL_ERROR(SCL_ERR_FORMAT,
                    "HDF5 file '%s': whole-file checksum mismatch: damaged (%lld bytes, written "
                    "with %llu)",
                    path, (long long)st.st_size, (unsigned long long)length);
  if (!err) err = body_hash(fd, st.st_size, path, &body);
  if (!err && body != get_u64(block + 24))
    err = SCL_ERROR(SCL_ERR_FORMAT,
                    "HDF5 file '%s': whole-file checksum mismatch: damaged (XXH3-64 of its "
                    "bytes after the first %d is %016llx, written as %016llx)",
                    path, H5_WHOLE_BLOCK, (unsigned long long)body,
                    (unsigned long long)get_u64(block + 24));
  close(fd);
  *sealed = !err;
  if (*sealed) remember_sealed(&st);
  return err;
}
