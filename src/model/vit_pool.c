/* vit_pool.c: the thread team behind vit_pool.h, on plain pthreads.
 *
 * Workers sleep on a condition variable between jobs and wake on a generation counter; the
 * caller works as member 0 and waits for the others on a second condition variable. Barriers
 * are pthread barriers (futex sleeps). Nothing spins: on this machine a spinning waiter steals
 * the core a GEMM needs, which costs far more than the microseconds a futex wake takes, and the
 * forward has only a few barriers per block. OpenMP would be the other choice; it was not
 * taken because its idle workers spin by default and it would be a second runtime beside
 * OpenBLAS's. */
#include "vit_pool.h"

#include <pthread.h>
#include <stdlib.h>

struct vit_pool {
  int nthreads;
  pthread_t *threads;
  pthread_mutex_t lock;
  pthread_cond_t wake; /* workers wait here for a new generation */
  pthread_cond_t done; /* the caller waits here for busy == 0 */
  pthread_barrier_t barrier;
  unsigned long generation;
  int busy; /* workers still running the current job */
  int stop;
  vit_pool_fn fn;
  void *arg;
};

typedef struct worker_start {
  vit_pool *pool;
  int tid;
} worker_start;

static void *worker_main(void *arg) {
  vit_pool *p = ((worker_start *)arg)->pool;
  const int tid = ((worker_start *)arg)->tid;
  unsigned long seen = 0;
  for (;;) {
    pthread_mutex_lock(&p->lock);
    while (p->generation == seen && !p->stop) pthread_cond_wait(&p->wake, &p->lock);
    if (p->stop) {
      pthread_mutex_unlock(&p->lock);
      return NULL;
    }
    seen = p->generation;
    vit_pool_fn fn = p->fn;
    void *fn_arg = p->arg;
    pthread_mutex_unlock(&p->lock);

    fn(fn_arg, tid, p->nthreads);

    pthread_mutex_lock(&p->lock);
    if (--p->busy == 0) pthread_cond_signal(&p->done);
    pthread_mutex_unlock(&p->lock);
  }
}

/* The start records live right after the thread handles, in the same allocation. */
static worker_start *starts_of(vit_pool *p) { return (worker_start *)(p->threads + p->nthreads); }

scl_err vit_pool_create(int nthreads, vit_pool **out) {
  *out = NULL;
  SCL_CHECK(nthreads >= 1 && nthreads <= 1024, SCL_ERR_ARG, "thread count %d is outside [1, 1024]",
            nthreads);
  vit_pool *p = calloc(1, sizeof *p);
  SCL_CHECK(p, SCL_ERR_NOMEM, "cannot allocate the thread pool");
  p->nthreads = nthreads;
  p->threads = calloc((size_t)nthreads, sizeof(pthread_t) + sizeof(worker_start));
  if (!p->threads) {
    free(p);
    return SCL_ERROR(SCL_ERR_NOMEM, "cannot allocate %d thread handles", nthreads);
  }
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  pthread_barrier_init(&p->barrier, NULL, (unsigned)nthreads);
  for (int t = 1; t < nthreads; t++) {
    worker_start *s = starts_of(p) + t;
    s->pool = p;
    s->tid = t;
    if (pthread_create(&p->threads[t], NULL, worker_main, s) != 0) {
      p->nthreads = t; /* join the ones that started */
      vit_pool_destroy(&p);
      return SCL_ERROR(SCL_ERR_INTERNAL, "cannot start worker thread %d of %d", t, nthreads);
    }
  }
  *out = p;
  return SCL_OK;
}

void vit_pool_destroy(vit_pool **pool) {
  if (!pool || !*pool) return;
  vit_pool *p = *pool;
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (int t = 1; t < p->nthreads; t++) pthread_join(p->threads[t], NULL);
  pthread_barrier_destroy(&p->barrier);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->lock);
  free(p->threads);
  free(p);
  *pool = NULL;
}

int vit_pool_size(const vit_pool *pool) { return pool->nthreads; }

void vit_pool_run(vit_pool *p, vit_pool_fn fn, void *arg) {
  if (p->nthreads == 1) {
    fn(arg, 0, 1);
    return;
  }
  pthread_mutex_lock(&p->lock);
  p->fn = fn;
  p->arg = arg;
  p->busy = p->nthreads - 1;
  p->generation++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);

  fn(arg, 0, p->nthreads);

  pthread_mutex_lock(&p->lock);
  while (p->busy > 0) pthread_cond_wait(&p->done, &p->lock);
  pthread_mutex_unlock(&p->lock);
}

void vit_pool_barrier(vit_pool *p) {
  if (p->nthreads > 1) pthread_barrier_wait(&p->barrier);
}
