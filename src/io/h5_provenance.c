/* h5_provenance.c: the standard root attributes every safecl HDF5 file carries (docs/conventions.md
 * 17) and the schema-version check readers run before trusting a file.
 *
 * Provenance is best effort by design: a file that cannot say which MPI it was built with is
 * still worth keeping, so an unavailable item is written as "unknown (...)" rather than failing
 * the write; only HDF5 failures to store an attribute are errors. The MPI library's version comes
 * from dist (dist_library_version), which also says whether MPI was running, since a serial tool
 * (`safecl pack`) never initialises it.
 * The schema check accepts exactly one version: readers here are not written to understand
 * other layouts, and a clear refusal beats a misread field. */
#include <cblas.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "h5_internal.h"
#include "safecl/dist.h"

static void h5_prov_time(char *buf, size_t size) {
  time_t now = time(NULL);
  struct tm tm;
  if (now == (time_t)-1 || !gmtime_r(&now, &tm) ||
      strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, size, "unknown");
}

scl_err h5_write_provenance(h5_file *f, int64_t schema_version) {
  SCL_CALL(h5_require_writable(f, "/"));
  char hdf5[64], mpi[DIST_LIBRARY_VERSION_MAX], host[256], when[64];
  unsigned maj = 0, min = 0, rel = 0;
  if (H5get_libversion(&maj, &min, &rel) < 0)
    snprintf(hdf5, sizeof hdf5, "unknown (header %s)", H5_VERS_INFO);
  else
    snprintf(hdf5, sizeof hdf5, "%u.%u.%u", maj, min, rel);
  dist_library_version(mpi, sizeof mpi);
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  h5_prov_time(when, sizeof when);
  const char *blas = openblas_get_config();

  SCL_CALL(h5_attr_write_i64(f, "/", "schema_version", schema_version));
  SCL_CALL(h5_attr_write_str(f, "/", "code_version", scl_version()));
  SCL_CALL(h5_attr_write_str(f, "/", "hdf5_version", hdf5));
  SCL_CALL(h5_attr_write_str(f, "/", "mpi_library_version", mpi));
  SCL_CALL(h5_attr_write_str(f, "/", "openblas_config", blas ? blas : "unknown"));
  SCL_CALL(h5_attr_write_str(f, "/", "simd_isa", scl_simd_isa()));
  SCL_CALL(h5_attr_write_str(f, "/", "hostname", host));
  SCL_CALL(h5_attr_write_str(f, "/", "created_utc", when));
  SCL_CALL(h5_attr_write_i64(f, "/", "threads", (int64_t)openblas_get_num_threads()));
  return SCL_OK;
}

scl_err h5_check_schema_range(h5_file *f, int64_t oldest, int64_t newest, const char *what) {
  SCL_CHECK(f, SCL_ERR_ARG, "h5_check_schema: NULL file");
  if (!what) what = "safecl";
  int exists = 0;
  SCL_CALL(h5_attr_exists(f, "/", "schema_version", &exists));
  SCL_CHECK(exists, SCL_ERR_FORMAT,
            "HDF5 file '%s' has no schema_version attribute: not a safecl file (or not "
            "a %s file; expected %s schema version %lld)",
            f->path, what, what, (long long)newest);
  int64_t v = 0;
  SCL_CALL(h5_attr_read_i64(f, "/", "schema_version", &v));
  SCL_CHECK(v <= newest, SCL_ERR_FORMAT,
            "HDF5 file '%s' is %s schema version %lld, newer than this safecl reads "
            "(%lld): written by a newer safecl? upgrade",
            f->path, what, (long long)v, (long long)newest);
  SCL_CHECK(v >= oldest, SCL_ERR_FORMAT,
            "HDF5 file '%s' is %s schema version %lld, older than this safecl reads "
            "(%lld): written by an older safecl; regenerate the file",
            f->path, what, (long long)v, (long long)oldest);
  return SCL_OK;
}

scl_err h5_check_schema(h5_file *f, int64_t expected_version, const char *what) {
  SCL_CALL(h5_check_schema_range(f, expected_version, expected_version, what));
  return SCL_OK;
}
