/*
 * screen: flags the out-of-distribution rows of a CSV file with a ddaebm model.
 *
 *   screen MODEL.safetensors ROWS.csv
 *
 * ROWS.csv holds one row per line, comma-separated numbers, no header. Prints
 * "flagged K of N rows (threshold T)", then the index and energy of each flagged row.
 */

#define _POSIX_C_SOURCE 200809L /* getline */

#include "ddaebm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable row-major matrix of floats. */
typedef struct {
  float *data;
  size_t len, cap;
} floats;

static int push(floats *v, float x) {
  if (v->len == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 256;
    float *data = realloc(v->data, cap * sizeof *data);
    if (data == NULL) return 0;
    v->data = data;
    v->cap = cap;
  }
  v->data[v->len++] = x;
  return 1;
}

/* Appends the `dim` comma-separated values of `line` to `rows`; 0 (with a message) if the line
 * is not exactly `dim` numbers. */
static int parse_row(const char *path, size_t line_no, const char *line, size_t dim,
                     floats *rows) {
  size_t cols = 0;
  const char *field = line;
  for (;;) {
    char *end;
    float x = strtof(field, &end);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (end == field || (*end != ',' && *end != '\0')) {
      fprintf(stderr, "error: %s:%zu: column %zu is not a number\n", path, line_no, cols + 1);
      return 0;
    }
    if (++cols <= dim && !push(rows, x)) {
      fprintf(stderr, "error: out of memory\n");
      return 0;
    }
    if (*end == '\0') break;
    field = end + 1; /* past the comma */
  }
  if (cols != dim) {
    fprintf(stderr, "error: %s:%zu: expected %zu columns, found %zu\n", path, line_no, dim, cols);
    return 0;
  }
  return 1;
}

/* Reads every non-blank line of the CSV at `path` into `rows`; 0 (with a message) on error. */
static int read_csv(const char *path, size_t dim, floats *rows) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
    return 0;
  }
  char *line = NULL;
  size_t line_cap = 0;
  int ok = 1;
  for (size_t line_no = 1; ok && getline(&line, &line_cap, f) != -1; line_no++) {
    if (strspn(line, " \t\r\n") == strlen(line)) continue; /* blank line */
    ok = parse_row(path, line_no, line, dim, rows);
  }
  if (ok && ferror(f)) {
    fprintf(stderr, "error: cannot read %s\n", path);
    ok = 0;
  }
  free(line);
  fclose(f);
  return ok;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL.safetensors ROWS.csv\n", argv[0]);
    return 2;
  }
  int status = EXIT_FAILURE;
  ddaebm_model *model = NULL;
  floats rows = {0};
  float *energy = NULL;
  uint8_t *is_ood = NULL;

  if (ddaebm_model_open(argv[1], NULL, &model) != DDAEBM_OK) {
    fprintf(stderr, "error: %s\n", ddaebm_last_error());
    goto done;
  }
  size_t dim = ddaebm_model_input_dim(model);
  if (!read_csv(argv[2], dim, &rows)) goto done;

  size_t n = rows.len / dim;
  energy = calloc(n, sizeof *energy);
  is_ood = calloc(n, sizeof *is_ood);
  if (n > 0 && (energy == NULL || is_ood == NULL)) {
    fprintf(stderr, "error: out of memory\n");
    goto done;
  }
  if (ddaebm_screen(model, rows.data, n, dim, energy, is_ood) != DDAEBM_OK) {
    fprintf(stderr, "error: %s\n", ddaebm_last_error());
    goto done;
  }

  size_t flagged = 0;
  for (size_t i = 0; i < n; i++) flagged += is_ood[i];
  printf("flagged %zu of %zu rows (threshold %g)\n", flagged, n,
         (double)ddaebm_model_threshold(model));
  for (size_t i = 0; i < n; i++) {
    if (is_ood[i]) printf("row %zu: energy %g\n", i, (double)energy[i]);
  }
  status = EXIT_SUCCESS;

done:
  free(is_ood);
  free(energy);
  free(rows.data);
  ddaebm_model_free(model);
  return status;
}
