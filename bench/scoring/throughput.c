/* Scoring throughput of ddaebm_energy called straight through the C ABI, for
 * bench/scoring/throughput.py: the same rows and the same timing rule as its Python cells.
 *
 *   throughput MODEL ROWS.f32 BATCH SECONDS
 *
 * ROWS.f32 holds raw little-endian f32 rows of the model's input width; the first BATCH of them
 * are scored again and again. After one warm-up call, three timings each run as many calls as
 * fill SECONDS / 3; the best is printed as rows per second. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ddaebm.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: throughput MODEL ROWS.f32 BATCH SECONDS\n");
    return 2;
  }
  size_t batch = (size_t)strtoul(argv[3], NULL, 10);
  double seconds = strtod(argv[4], NULL);
  ddaebm_model *m = NULL;
  if (ddaebm_model_open(argv[1], NULL, &m) != DDAEBM_OK) {
    fprintf(stderr, "open: %s\n", ddaebm_last_error());
    return 1;
  }
  size_t d = ddaebm_model_input_dim(m);
  float *rows = malloc(batch * d * sizeof(float));
  float *energy = malloc(batch * sizeof(float));
  FILE *f = fopen(argv[2], "rb");
  if (!rows || !energy || !f || fread(rows, sizeof(float), batch * d, f) != batch * d) {
    fprintf(stderr, "cannot read %zu rows of %zu values from %s\n", batch, d, argv[2]);
    return 1;
  }
  fclose(f);
  if (ddaebm_energy(m, rows, batch, d, energy) != DDAEBM_OK) {
    fprintf(stderr, "energy: %s\n", ddaebm_last_error());
    return 1;
  }
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    size_t calls = 0;
    double start = now_s(), elapsed;
    do {
      ddaebm_energy(m, rows, batch, d, energy);
      calls++;
      elapsed = now_s() - start;
    } while (elapsed < seconds / 3);
    double rate = (double)(calls * batch) / elapsed;
    if (rate > best)
      best = rate;
  }
  printf("%.1f\n", best);
  ddaebm_model_free(m);
  free(rows);
  free(energy);
  return 0;
}
