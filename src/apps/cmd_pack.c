/* cmd_pack.c: `safecl pack ROOT OUT.h5`: a class-folder dataset, or a DomainNet root of list
 * files (ROOT/<domain>_<split>.txt), into one HDF5 file. */
#include <stdio.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/data.h"

int cmd_pack(int argc, char **argv) {
  if (argc != 3 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf(
        "usage: safecl pack ROOT OUT.h5\n\n"
        "Packs a dataset into one HDF5 file, for filesystems that suffer from many small files:\n"
        "  class folders ROOT/{train,test}/<class>/<image>: use OUT.h5 as dataset.root (format\n"
        "    \"folder\") in place of ROOT;\n"
        "  DomainNet list files ROOT/<domain>_{train,test}.txt (\"relative/path label\" lines):\n"
        "    every list and every image they name; use OUT.h5 as dataset.root (format\n"
        "    \"domainnet\", any dataset.domains of the packed lists).\n"
        "Same samples, order, labels and manifest as ROOT, so trial identities do not change.\n");
    return argc == 2 ? 0 : 2;
  }
  scl_err err =
      data_list_root(argv[1]) ? data_pack_lists(argv[1], argv[2]) : data_pack(argv[1], argv[2]);
  if (err) scl_log_error_traceback();
  return err ? 1 : 0;
}
