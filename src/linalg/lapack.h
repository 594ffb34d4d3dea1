/* lapack.h: the Fortran LAPACK routines safecl calls, declared once (OpenBLAS exports them; its
 * Debian build ships no LAPACKE). Trailing size_t arguments are gfortran's hidden lengths of the
 * character arguments. Private to src/linalg/. */
#ifndef SAFECL_LINALG_LAPACK_H
#define SAFECL_LINALG_LAPACK_H

#include <stddef.h>

void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t uplo_len);
void sgesv_(const int *n, const int *nrhs, float *a, const int *lda, int *ipiv, float *b,
            const int *ldb, int *info);

#endif /* SAFECL_LINALG_LAPACK_H */
