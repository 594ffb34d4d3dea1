/* dist_mpi.h: the MPI side of dist.h, for the few files that hold a raw MPI communicator: main's
 * commands (MPI_COMM_WORLD), the BLACS grids of the group ridge solver and the MPI-IO driver of
 * group HDF5 files. Everything else passes dist_comm handles and includes dist.h only. */
#ifndef SAFECL_DIST_MPI_H
#define SAFECL_DIST_MPI_H

#include <mpi.h>

#include "safecl/dist.h"

/* Duplicates `comm` (collective over comm) and sets MPI_ERRORS_RETURN on the duplicate.
 * *out is owned by the caller: release with dist_comm_destroy. */
SCL_NODISCARD scl_err dist_comm_create(MPI_Comm comm, dist_comm **out);
/* The raw communicator, for libraries that need it (BLACS, parallel HDF5); owned by c.
 * MPI_COMM_NULL for dist_comm_self() and its duplicates. */
MPI_Comm dist_comm_mpi(const dist_comm *c);

#endif /* SAFECL_DIST_MPI_H */
