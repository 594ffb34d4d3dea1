/* h5_attr.c: scalar attributes (string, int64, double) on the root or on a named object, and
 * the string plumbing shared with string datasets.
 *
 * Attributes are written as scalars of a fixed little-endian type (int64, float64) or as one
 * variable-length UTF-8 string (fixed-length on files made with h5_file_fixed_strings), which is what h5py writes for Python ints, floats and strs, so
 * files read naturally from Python. Readers are more liberal than writers: any integer type reads
 * as int64, any numeric type as double, fixed-length and variable-length strings both read as
 * strings, and a one-element array counts as a scalar. A missing object or attribute is
 * SCL_ERR_FORMAT (the file is not what was expected), not an HDF5 failure. On a group file
 * (h5_group.c) every rank writes rank 0's value and the ranks agree on the outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5_internal.h"

scl_err h5_str_dup(const char *src, size_t max, int spacepad, char **out) {
  size_t len = src ? strnlen(src, max) : 0;
  while (spacepad && len > 0 && src[len - 1] == ' ') len--;
  *out = malloc(len + 1);
  SCL_CHECK(*out, SCL_ERR_NOMEM, "HDF5 string of %zu bytes", len);
  if (len) memcpy(*out, src, len);
  (*out)[len] = '\0';
  return SCL_OK;
}

/* "obj (attribute key)", the object name used in messages about an attribute. */
static void h5_attr_label(char *buf, size_t size, const char *obj, const char *key) {
  snprintf(buf, size, "%s (attribute '%s')", h5_obj_name(obj), key);
}

static scl_err h5_obj_open(h5_file *f, const char *obj, hid_t *o) {
  *o = -1;
  SCL_CHECK(f, SCL_ERR_ARG, "h5: NULL file");
  const char *name = h5_obj_name(obj);
  if (strcmp(name, "/") != 0) {
    int e = h5_link_exists(f->id, name);
    if (e < 0) return H5_FAIL(f, name, "H5Lexists");
    SCL_CHECK(e != 0, SCL_ERR_FORMAT, "HDF5 file '%s' has no object '%s'", f->path, name);
  }
  if ((*o = H5Oopen(f->id, name, H5P_DEFAULT)) < 0) return H5_FAIL(f, name, "H5Oopen");
  return SCL_OK;
}

/* Writes one scalar attribute of file type ftype from *value of memory type mtype. */
static scl_err h5_attr_write(h5_file *f, const char *obj, const char *key, hid_t ftype, hid_t mtype,
                             const void *value) {
  SCL_CALL(h5_require_writable(f, obj));
  char label[512];
  h5_attr_label(label, sizeof label, obj, key);
  hid_t o, space = -1, a = -1;
  SCL_CALL(h5_obj_open(f, obj, &o));
  scl_err err = SCL_OK;
  htri_t e = H5Aexists(o, key);
  if (e < 0 || (e > 0 && H5Adelete(o, key) < 0))
    err = H5_FAIL(f, label, e < 0 ? "H5Aexists" : "H5Adelete");
  else if ((space = H5Screate(H5S_SCALAR)) < 0)
    err = H5_FAIL(f, label, "H5Screate");
  else if ((a = H5Acreate2(o, key, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    err = H5_FAIL(f, label, "H5Acreate2");
  else if (H5Awrite(a, mtype, value) < 0)
    err = H5_FAIL(f, label, "H5Awrite");
  if (a >= 0) H5Aclose(a);
  if (space >= 0) H5Sclose(space);
  H5Oclose(o);
  return h5_group_agree(f, err);
}

scl_err h5_attr_write_str(h5_file *f, const char *obj, const char *key, const char *value) {
  SCL_CHECK(value, SCL_ERR_ARG, "h5: NULL value for attribute '%s'", key);
  char *rank0 = NULL; /* group files: every rank writes rank 0's value */
  SCL_CALL(h5_group_bcast_str(f, &value, &rank0, key));
  hid_t t = f->fixed_strings ? h5_fixed_utf8_type(strlen(value)) : h5_vlen_utf8_type();
  if (t < 0) {
    free(rank0);
    return H5_FAIL(f, obj, "H5Tcopy(string type)");
  }
  scl_err err = h5_attr_write(f, obj, key, t, t, f->fixed_strings ? (const void *)value : &value);
  H5Tclose(t);
  free(rank0);
  SCL_CALL(err);
  return SCL_OK;
}

scl_err h5_attr_write_i64(h5_file *f, const char *obj, const char *key, int64_t value) {
  SCL_CALL(h5_group_bcast(f, &value, sizeof value, key));
  SCL_CALL(h5_attr_write(f, obj, key, H5T_STD_I64LE, H5T_NATIVE_INT64, &value));
  return SCL_OK;
}

scl_err h5_attr_write_f64(h5_file *f, const char *obj, const char *key, double value) {
  SCL_CALL(h5_group_bcast(f, &value, sizeof value, key));
  SCL_CALL(h5_attr_write(f, obj, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value));
  return SCL_OK;
}

scl_err h5_attr_exists(h5_file *f, const char *obj, const char *key, int *exists) {
  *exists = 0;
  hid_t o;
  SCL_CALL(h5_obj_open(f, obj, &o));
  htri_t e = H5Aexists(o, key);
  scl_err err = SCL_OK;
  if (e < 0) {
    char label[512];
    h5_attr_label(label, sizeof label, obj, key);
    err = H5_FAIL(f, label, "H5Aexists");
  }
  H5Oclose(o);
  SCL_CALL(err);
  *exists = e > 0;
  return SCL_OK;
}

/* An open scalar attribute with its file type and class; the caller closes type and attr. */
typedef struct h5_attr_handle {
  hid_t attr, type, space;
  H5T_class_t cls;
  char label[512];
} h5_attr_handle;

static void h5_attr_close(h5_attr_handle *h) {
  if (h->space >= 0) H5Sclose(h->space);
  if (h->type >= 0) H5Tclose(h->type);
  if (h->attr >= 0) H5Aclose(h->attr);
}

static scl_err h5_attr_open(h5_file *f, const char *obj, const char *key, h5_attr_handle *h) {
  h->attr = h->type = h->space = -1;
  h5_attr_label(h->label, sizeof h->label, obj, key);
  int exists;
  SCL_CALL(h5_attr_exists(f, obj, key, &exists));
  SCL_CHECK(exists, SCL_ERR_FORMAT, "HDF5 file '%s': object '%s' has no attribute '%s'", f->path,
            h5_obj_name(obj), key);
  scl_err err = SCL_OK;
  hid_t o;
  SCL_CALL(h5_obj_open(f, obj, &o));
  if ((h->attr = H5Aopen(o, key, H5P_DEFAULT)) < 0)
    err = H5_FAIL(f, h->label, "H5Aopen");
  else if ((h->type = H5Aget_type(h->attr)) < 0)
    err = H5_FAIL(f, h->label, "H5Aget_type");
  else if ((h->space = H5Aget_space(h->attr)) < 0)
    err = H5_FAIL(f, h->label, "H5Aget_space");
  H5Oclose(o);
  if (!err && H5Sget_simple_extent_npoints(h->space) != 1)
    err = SCL_ERROR(SCL_ERR_FORMAT, "HDF5 file '%s', %s: not a single value", f->path, h->label);
  if (!err) h->cls = H5Tget_class(h->type);
  if (err) h5_attr_close(h);
  return err;
}

static scl_err h5_attr_read_num(h5_file *f, const char *obj, const char *key, hid_t mtype,
                                int allow_float, void *value) {
  h5_attr_handle h;
  SCL_CALL(h5_attr_open(f, obj, key, &h));
  scl_err err = SCL_OK;
  if (h.cls != H5T_INTEGER && !(allow_float && h.cls == H5T_FLOAT))
    err = SCL_ERROR(SCL_ERR_FORMAT, "HDF5 file '%s', %s: not %s", f->path, h.label,
                    allow_float ? "a number" : "an integer");
  else if (H5Aread(h.attr, mtype, value) < 0)
    err = H5_FAIL(f, h.label, "H5Aread");
  h5_attr_close(&h);
  SCL_CALL(err);
  return SCL_OK;
}

scl_err h5_attr_read_i64(h5_file *f, const char *obj, const char *key, int64_t *value) {
  SCL_CALL(h5_attr_read_num(f, obj, key, H5T_NATIVE_INT64, 0, value));
  return SCL_OK;
}

scl_err h5_attr_read_f64(h5_file *f, const char *obj, const char *key, double *value) {
  SCL_CALL(h5_attr_read_num(f, obj, key, H5T_NATIVE_DOUBLE, 1, value));
  return SCL_OK;
}

static scl_err h5_attr_read_vlen(h5_file *f, h5_attr_handle *h, char **value) {
  hid_t mt = h5_vlen_utf8_type();
  if (mt < 0) return H5_FAIL(f, h->label, "H5Tcopy(string type)");
  scl_err err = SCL_OK;
  char *s = NULL;
  if (H5Tset_cset(mt, H5Tget_cset(h->type)) < 0)
    err = H5_FAIL(f, h->label, "H5Tset_cset");
  else if (H5Aread(h->attr, mt, &s) < 0)
    err = H5_FAIL(f, h->label, "H5Aread");
  else {
    err = h5_str_dup(s, (size_t)-1, 0, value);
    H5_VLEN_RECLAIM(mt, h->space, &s);
  }
  H5Tclose(mt);
  return err;
}

static scl_err h5_attr_read_fixed(h5_file *f, h5_attr_handle *h, char **value) {
  size_t size = H5Tget_size(h->type);
  char *buf = malloc(size + 1);
  SCL_CHECK(buf, SCL_ERR_NOMEM, "HDF5 string attribute %s", h->label);
  scl_err err = SCL_OK;
  if (H5Aread(h->attr, h->type, buf) < 0)
    err = H5_FAIL(f, h->label, "H5Aread");
  else
    err = h5_str_dup(buf, size, H5Tget_strpad(h->type) == H5T_STR_SPACEPAD, value);
  free(buf);
  return err;
}

scl_err h5_attr_read_str(h5_file *f, const char *obj, const char *key, char **value) {
  *value = NULL;
  h5_attr_handle h;
  SCL_CALL(h5_attr_open(f, obj, key, &h));
  scl_err err = SCL_OK;
  if (h.cls != H5T_STRING)
    err = SCL_ERROR(SCL_ERR_FORMAT, "HDF5 file '%s', %s: not a string", f->path, h.label);
  else if (H5Tis_variable_str(h.type) > 0)
    err = h5_attr_read_vlen(f, &h, value);
  else
    err = h5_attr_read_fixed(f, &h, value);
  h5_attr_close(&h);
  SCL_CALL(err);
  return SCL_OK;
}
