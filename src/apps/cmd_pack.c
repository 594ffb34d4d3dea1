/* cmd_pack.c: `safecl pack ROOT OUT.h5`: a class-folder dataset into one HDF5 file. */
#include <stdio.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/data.h"

int cmd_pack(int argc, char **argv) {
  if (argc != 3 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf(
        "usage: safecl pack ROOT OUT.h5\n\n"
        "Packs the class-folder dataset ROOT/{train,test}/<class>/<image> into one HDF5 file.\n"
        "Use OUT.h5 as data.root / dataset.root (format \"folder\") in place of ROOT: same\n"
        "samples, order, labels and manifest, so trial identities do not change.\n");
    return argc == 2 ? 0 : 2;
  }
  scl_err err = data_pack(argv[1], argv[2]);
  if (err) scl_log_error_traceback();
  return err ? 1 : 0;
}
