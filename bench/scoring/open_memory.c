/* Open time and memory of a model through the C ABI.
 *
 *   open_memory MODEL.safetensors
 *
 * Prints one line of `key=value` pairs:
 *   first_open_ms     the first ddaebm_model_open in the process (includes library start-up)
 *   open_p50_ms       median of 50 further open + free cycles
 *   file_kb           the model file's size
 *   rss_open_kb       resident memory added by the first open (and one scored row)
 *   rss_thread_kb     resident memory added per extra host thread that scores with the model
 *                     (8 threads, each scoring 64 rows, all alive when measured) */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "ddaebm.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long rss_kb(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
    if (f) fclose(f);
    return -1;
  }
  fclose(f);
  return resident * 4; /* 4 KiB pages */
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

enum { THREADS = 8, ROWS = 64 };
static ddaebm_model *model;
static size_t dim;
static pthread_barrier_t scored, release;

static void *worker(void *arg) {
  (void)arg;
  float *x = calloc(ROWS * dim, sizeof(float)), e[ROWS];
  for (int i = 0; i < 20; i++) ddaebm_energy(model, x, ROWS, dim, e);
  free(x);
  pthread_barrier_wait(&scored);
  pthread_barrier_wait(&release);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: open_memory MODEL\n");
    return 2;
  }
  struct stat st;
  if (stat(argv[1], &st) != 0) {
    perror(argv[1]);
    return 1;
  }
  long rss0 = rss_kb();
  double t0 = now_ms();
  if (ddaebm_model_open(argv[1], NULL, &model) != DDAEBM_OK) {
    fprintf(stderr, "open: %s\n", ddaebm_last_error());
    return 1;
  }
  double first = now_ms() - t0;
  dim = ddaebm_model_input_dim(model);
  float *row = calloc(dim, sizeof(float)), e;
  ddaebm_energy(model, row, 1, dim, &e);
  long rss_open = rss_kb() - rss0;

  double t[50];
  for (int i = 0; i < 50; i++) {
    ddaebm_model *m2 = NULL;
    double s = now_ms();
    ddaebm_model_open(argv[1], NULL, &m2);
    t[i] = now_ms() - s;
    ddaebm_model_free(m2);
  }
  qsort(t, 50, sizeof(double), cmp);

  long rss_before_threads = rss_kb();
  pthread_barrier_init(&scored, NULL, THREADS + 1);
  pthread_barrier_init(&release, NULL, THREADS + 1);
  pthread_t ids[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&ids[i], NULL, worker, NULL);
  pthread_barrier_wait(&scored);
  long rss_threads = rss_kb() - rss_before_threads;
  pthread_barrier_wait(&release);
  for (int i = 0; i < THREADS; i++) pthread_join(ids[i], NULL);

  printf("first_open_ms=%.3f open_p50_ms=%.3f file_kb=%ld rss_open_kb=%ld rss_thread_kb=%ld\n",
         first, t[25], (long)(st.st_size / 1024), rss_open, rss_threads / THREADS);
  ddaebm_model_free(model);
  free(row);
  return 0;
}
