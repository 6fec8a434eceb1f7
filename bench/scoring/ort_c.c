/* ONNX Runtime's C API running the graph `ddaebm-train export --onnx` writes, for
 * bench/scoring/throughput.py: the peer a C or C++ service would embed instead of libddaebm.
 *
 *   ort_c throughput LIBORT MODEL.onnx ROWS.f32 D BATCH SECONDS THREADS   -> rows/s
 *   ort_c latency    LIBORT MODEL.onnx ROWS.f32 D CALLS THREADS           -> p50_us p99_us mean_us
 *   ort_c energy     LIBORT MODEL.onnx ROWS.f32 D BATCH OUT.f32 THREADS   -> writes BATCH energies
 *
 * LIBORT is libonnxruntime.so (the onnxruntime Python wheel ships one in onnxruntime/capi/); it is
 * opened with dlopen, so this file needs neither ONNX Runtime's headers nor its import library.
 * The session is the tuned one a C user would build: THREADS intra-op threads, one inter-op
 * thread, sequential execution, every graph optimisation, and input and output tensors created
 * once over the caller's buffers (no allocation per call). Timing rules match throughput.c and
 * latency.c: one warm-up call; throughput is the best of three runs of SECONDS / 3 each; latency
 * times each single-row call (cycling over 1024 rows) with CLOCK_MONOTONIC.
 *
 * The C API is a table of function pointers (OrtApi) returned by OrtGetApiBase()->GetApi(version).
 * Its entries are only ever appended, so the positions below (those of API version 13, ONNX
 * Runtime 1.13) are valid for every later library, which hands out the version-13 table when
 * asked for it. Each entry used is given its C signature here. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void OrtStatus; /* NULL means success */
typedef void OrtEnv;
typedef void OrtSessionOptions;
typedef void OrtSession;
typedef void OrtMemoryInfo;
typedef void OrtValue;

enum { API_VERSION = 13 };
enum { LOG_WARNING = 2, GRAPH_OPT_ALL = 99, SEQUENTIAL = 0, TENSOR_FLOAT = 1 };
enum { ARENA_ALLOCATOR = 1, MEM_TYPE_DEFAULT = 0 };

/* Positions in OrtApi (0-based). */
enum {
  GET_ERROR_MESSAGE = 2,
  CREATE_ENV = 3,
  CREATE_SESSION = 7,
  RUN = 9,
  CREATE_SESSION_OPTIONS = 10,
  SET_EXECUTION_MODE = 13,
  SET_GRAPH_OPTIMIZATION_LEVEL = 23,
  SET_INTRA_OP_THREADS = 24,
  SET_INTER_OP_THREADS = 25,
  CREATE_TENSOR_WITH_DATA = 49,
  CREATE_CPU_MEMORY_INFO = 69,
  RELEASE_VALUE = 96,
};

typedef struct {
  const void *const *(*get_api)(uint32_t version);
  const char *(*get_version_string)(void);
} OrtApiBase;

static const void *const *api;

#define ENTRY(index, type) ((type)api[index])

static void check(OrtStatus *status, const char *what) {
  if (status) {
    const char *(*message)(const OrtStatus *) =
        ENTRY(GET_ERROR_MESSAGE, const char *(*)(const OrtStatus *));
    fprintf(stderr, "%s: %s\n", what, message(status));
    exit(1);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct {
  OrtSession *session;
  OrtMemoryInfo *memory;
  OrtValue *in, *out;
} Runner;

static OrtValue *tensor(Runner *r, float *data, const int64_t *shape, size_t rank) {
  size_t n = 1;
  for (size_t i = 0; i < rank; i++)
    n *= (size_t)shape[i];
  OrtValue *v = NULL;
  check(ENTRY(CREATE_TENSOR_WITH_DATA,
              OrtStatus * (*)(const OrtMemoryInfo *, void *, size_t, const int64_t *, size_t, int,
                              OrtValue **))(r->memory, data, n * sizeof(float), shape, rank,
                                            TENSOR_FLOAT, &v),
        "CreateTensorWithDataAsOrtValue");
  return v;
}

/* Input [rows, d] over `x`, output [rows] over `energy`, both owned by the caller. */
static void bind(Runner *r, float *x, float *energy, size_t rows, size_t d) {
  void (*release)(OrtValue *) = ENTRY(RELEASE_VALUE, void (*)(OrtValue *));
  if (r->in)
    release(r->in);
  if (r->out)
    release(r->out);
  int64_t in_shape[2] = {(int64_t)rows, (int64_t)d}, out_shape[1] = {(int64_t)rows};
  r->in = tensor(r, x, in_shape, 2);
  r->out = tensor(r, energy, out_shape, 1);
}

static void run(Runner *r) {
  static const char *in_names[] = {"x"}, *out_names[] = {"energy"};
  check(ENTRY(RUN, OrtStatus * (*)(OrtSession *, const void *, const char *const *,
                                   const OrtValue *const *, size_t, const char *const *, size_t,
                                   OrtValue **))(r->session, NULL, in_names,
                                                 (const OrtValue *const *)&r->in, 1, out_names, 1,
                                                 &r->out),
        "Run");
}

int main(int argc, char **argv) {
  if (argc != 9 && !(argc == 8 && strcmp(argv[1], "latency") == 0)) {
    fprintf(stderr, "usage: ort_c throughput LIBORT MODEL ROWS.f32 D BATCH SECONDS THREADS\n"
                    "       ort_c latency LIBORT MODEL ROWS.f32 D CALLS THREADS\n"
                    "       ort_c energy LIBORT MODEL ROWS.f32 D BATCH OUT.f32 THREADS\n");
    return 2;
  }
  const char *mode = argv[1];
  void *lib = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(lib, "OrtGetApiBase");
  if (!get_base || !(api = get_base()->get_api(API_VERSION))) {
    fprintf(stderr, "%s has no C API of version %d\n", argv[2], API_VERSION);
    return 1;
  }
  size_t d = (size_t)strtoul(argv[5], NULL, 10);
  size_t n = (size_t)strtoul(argv[6], NULL, 10); /* batch, or calls for latency */
  int threads = atoi(argv[argc - 1]);

  OrtEnv *env = NULL;
  check(ENTRY(CREATE_ENV, OrtStatus * (*)(int, const char *, OrtEnv **))(LOG_WARNING, "bench",
                                                                          &env),
        "CreateEnv");
  OrtSessionOptions *so = NULL;
  check(ENTRY(CREATE_SESSION_OPTIONS, OrtStatus * (*)(OrtSessionOptions **))(&so),
        "CreateSessionOptions");
  check(ENTRY(SET_INTRA_OP_THREADS, OrtStatus * (*)(OrtSessionOptions *, int))(so, threads),
        "SetIntraOpNumThreads");
  check(ENTRY(SET_INTER_OP_THREADS, OrtStatus * (*)(OrtSessionOptions *, int))(so, 1),
        "SetInterOpNumThreads");
  check(ENTRY(SET_EXECUTION_MODE, OrtStatus * (*)(OrtSessionOptions *, int))(so, SEQUENTIAL),
        "SetSessionExecutionMode");
  check(ENTRY(SET_GRAPH_OPTIMIZATION_LEVEL, OrtStatus * (*)(OrtSessionOptions *, int))(
            so, GRAPH_OPT_ALL),
        "SetSessionGraphOptimizationLevel");
  Runner r = {0};
  check(ENTRY(CREATE_SESSION, OrtStatus * (*)(OrtEnv *, const char *, const OrtSessionOptions *,
                                              OrtSession **))(env, argv[3], so, &r.session),
        "CreateSession");
  check(ENTRY(CREATE_CPU_MEMORY_INFO, OrtStatus * (*)(int, int, OrtMemoryInfo **))(
            ARENA_ALLOCATOR, MEM_TYPE_DEFAULT, &r.memory),
        "CreateCpuMemoryInfo");

  size_t rows_needed = strcmp(mode, "latency") == 0 ? 1024 : n;
  float *rows = malloc(rows_needed * d * sizeof(float));
  float *energy = malloc(rows_needed * sizeof(float));
  FILE *f = fopen(argv[4], "rb");
  if (!rows || !energy || !f || fread(rows, sizeof(float), rows_needed * d, f) != rows_needed * d) {
    fprintf(stderr, "cannot read %zu rows of %zu values from %s\n", rows_needed, d, argv[4]);
    return 1;
  }
  fclose(f);

  if (strcmp(mode, "throughput") == 0) {
    double seconds = strtod(argv[7], NULL);
    bind(&r, rows, energy, n, d);
    run(&r);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
      size_t calls = 0;
      double start = now_s(), elapsed;
      do {
        run(&r);
        calls++;
        elapsed = now_s() - start;
      } while (elapsed < seconds / 3);
      double rate = (double)(calls * n) / elapsed;
      if (rate > best)
        best = rate;
    }
    printf("%.1f\n", best);
  } else if (strcmp(mode, "energy") == 0) {
    bind(&r, rows, energy, n, d);
    run(&r);
    FILE *o = fopen(argv[7], "wb");
    if (!o || fwrite(energy, sizeof(float), n, o) != n) {
      fprintf(stderr, "cannot write %s\n", argv[7]);
      return 1;
    }
    fclose(o);
  } else if (strcmp(mode, "latency") == 0) {
    /* One bound pair of tensors per row, made before timing, as a service scoring one request
     * at a time into fixed buffers would. */
    Runner *per_row = malloc(1024 * sizeof(Runner));
    for (size_t i = 0; i < 1024; i++) {
      per_row[i] = r;
      per_row[i].in = per_row[i].out = NULL;
      bind(&per_row[i], rows + i * d, energy + i, 1, d);
    }
    for (size_t i = 0; i < 1000; i++)
      run(&per_row[i % 1024]);
    double *t = malloc(n * sizeof(double)), sum = 0;
    for (size_t i = 0; i < n; i++) {
      double start = now_s();
      run(&per_row[i % 1024]);
      t[i] = (now_s() - start) * 1e6;
      sum += t[i];
    }
    qsort(t, n, sizeof(double), cmp);
    printf("%.2f %.2f %.2f\n", t[n / 2], t[(size_t)(0.99 * (double)(n - 1))], sum / (double)n);
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  return 0;
}
