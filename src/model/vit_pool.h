/* vit_pool.h: a fixed team of threads that runs one function on every member (private to
 * src/model).
 *
 * The ViT forward is a sequence of phases over a fixed team (row-split GEMMs, (image, head)
 * attention tasks); the team is created once with the model and sleeps between forwards, so the
 * only threading runtime active during a forward is this one (OpenBLAS runs single-threaded
 * inside it). */
#ifndef SAFECL_MODEL_VIT_POOL_H
#define SAFECL_MODEL_VIT_POOL_H

#include "safecl/core.h"

typedef struct vit_pool vit_pool;

/* fn(arg, tid, nthreads) runs once on every member; tid 0 is the calling thread. */
typedef void (*vit_pool_fn)(void *arg, int tid, int nthreads);

/* Starts nthreads - 1 workers (nthreads >= 1). */
SCL_NODISCARD scl_err vit_pool_create(int nthreads, vit_pool **out);
/* Stops and joins the workers; accepts NULL and sets *pool to NULL. */
void vit_pool_destroy(vit_pool **pool);
int vit_pool_size(const vit_pool *pool);
/* Runs fn on every member and returns when all have returned. Not reentrant. */
void vit_pool_run(vit_pool *pool, vit_pool_fn fn, void *arg);
/* Inside fn: waits until every member has reached it. Members sleep, they do not spin, so a
 * waiting member gives its core to whoever needs it. */
void vit_pool_barrier(vit_pool *pool);

#endif /* SAFECL_MODEL_VIT_POOL_H */
