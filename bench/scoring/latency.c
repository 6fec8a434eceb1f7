/* Single-row latency of ddaebm_energy through the C ABI: p50 / p99 / mean over many calls.
 *
 *   latency MODEL.safetensors [CALLS]
 *
 * Each call scores one row (a different row each time, cycling over 1024 rows near the model's
 * training data); the time of every call is taken with CLOCK_MONOTONIC and the percentiles are
 * printed on one line as: p50_us p99_us mean_us calls. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ddaebm.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: latency MODEL [CALLS]\n");
    return 2;
  }
  size_t calls = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 200000;
  ddaebm_model *m = NULL;
  if (ddaebm_model_open(argv[1], NULL, &m) != DDAEBM_OK) {
    fprintf(stderr, "open: %s\n", ddaebm_last_error());
    return 1;
  }
  size_t d = ddaebm_model_input_dim(m), n_rows = 1024;
  float *rows = malloc(n_rows * d * sizeof(float));
  double *t = malloc(calls * sizeof(double));
  unsigned s = 1;
  for (size_t i = 0; i < n_rows * d; i++) {
    s = s * 1103515245u + 12345u;
    rows[i] = 1.0f + 2.0f * ((float)((s >> 8) & 0xffff) / 32768.0f - 1.0f);
  }
  float e = 0;
  for (size_t i = 0; i < 1000; i++) /* warm-up */
    ddaebm_energy(m, rows + (i % n_rows) * d, 1, d, &e);
  double sum = 0;
  for (size_t i = 0; i < calls; i++) {
    double t0 = now_us();
    if (ddaebm_energy(m, rows + (i % n_rows) * d, 1, d, &e) != DDAEBM_OK) {
      fprintf(stderr, "energy: %s\n", ddaebm_last_error());
      return 1;
    }
    t[i] = now_us() - t0;
    sum += t[i];
  }
  qsort(t, calls, sizeof(double), cmp);
  printf("%.2f %.2f %.2f %zu\n", t[calls / 2], t[calls * 99 / 100], sum / (double)calls, calls);
  ddaebm_model_free(m);
  free(rows);
  free(t);
  return 0;
}
