/* scalapack.h: the BLACS and ScaLAPACK routines safecl calls, declared once (Debian's
 * libscalapack-openmpi ships no headers). BLACS through its C interface (Cblacs_*), ScaLAPACK
 * through the Fortran symbols; trailing size_t arguments are gfortran's hidden lengths of the
 * character arguments. Descriptors are the 9-integer arrays of descinit_. Private to
 * src/linalg/. */
#ifndef SAFECL_LINALG_SCALAPACK_H
#define SAFECL_LINALG_SCALAPACK_H

#include <mpi.h>
#include <stddef.h>

#define SCALAPACK_DLEN 9
/* Descriptor fields (0-based) used outside descinit_. */
#define SCALAPACK_CTXT 1

int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *ictxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ictxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ictxt);

int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld, int *info);

/* Redistribution between any two block-cyclic layouts; ictxt spans both grids. */
void psgemr2d_(const int *m, const int *n, const float *a, const int *ia, const int *ja,
               const int *desca, float *b, const int *ib, const int *jb, const int *descb,
               const int *ictxt);

void pdsyrk_(const char *uplo, const char *trans, const int *n, const int *k, const double *alpha,
             const double *a, const int *ia, const int *ja, const int *desca, const double *beta,
             double *c, const int *ic, const int *jc, const int *descc, size_t uplo_len,
             size_t trans_len);
void pdpotrf_(const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, int *info, size_t uplo_len);
void pdpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *ia,
              const int *ja, const int *desca, double *b, const int *ib, const int *jb,
              const int *descb, int *info, size_t uplo_len);
void pdsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, double *w, double *z, const int *iz, const int *jz,
              const int *descz, double *work, const int *lwork, int *iwork, const int *liwork,
              int *info, size_t jobz_len, size_t uplo_len);

#endif /* SAFECL_LINALG_SCALAPACK_H */
