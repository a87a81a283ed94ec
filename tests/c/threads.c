/*
 * One model shared by several threads: every prediction gives the reference labels, and each
 * thread sees its own last error message. Then a model freed while another thread predicts on it:
 * the prediction returns NNRT_CANCELLED and the free waits for it (valgrind checks nothing is
 * touched after the free). Driven by tests/c_abi.rs.
 *
 *   threads MODEL_DIR THREADS PREDICTIONS_PER_THREAD
 *
 * MODEL_DIR must take one CT channel at spacing (0.75, 0.75, 2.0) mm and have a fold "0".
 */

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnunet_rt.h"

enum { NX = 48, NY = 32, NZ = 16, NVOX = NX * NY * NZ, MAX_THREADS = 64 };

static int16_t voxels[NVOX];
static uint8_t reference[NVOX];
static nnrt_volume volume;
static const nnrt_model *model;
static const nnrt_predict_options *options;
static int predictions_per_thread;

typedef struct worker {
  pthread_t thread;
  int index;
  int done;
  int mismatches;
  int errors;
  char message[256];
} worker;

static void *work(void *arg) {
  worker *w = (worker *)arg;
  char expected[64];
  const char *name = NULL;
  size_t n = 0;
  int i;
  for (i = 0; i < predictions_per_thread; i++) {
    nnrt_result *result = NULL;
    const void *labels = NULL;
    uint32_t dtype = 0;
    size_t dims[3];
    nnrt_status status = nnrt_predict(model, &volume, options, &result);
    if (status != NNRT_OK) {
      w->errors++;
      snprintf(w->message, sizeof w->message, "%s", nnrt_last_error_message());
      continue;
    }
    if (nnrt_result_labels(result, &labels, &dtype, dims) != NNRT_OK || dtype != NNRT_DTYPE_U8 ||
        memcmp(labels, reference, NVOX) != 0) {
      w->mismatches++;
    }
    nnrt_result_free(result);
    w->done++;

    /* A failure on this thread sets this thread's message only. */
    if (nnrt_model_label_name(model, 1000 + (size_t)w->index, &name) != NNRT_INVALID_ARGUMENT) {
      w->errors++;
    }
    snprintf(expected, sizeof expected, "index %d ", 1000 + w->index);
    if (strstr(nnrt_last_error_message(), expected) == NULL) {
      w->errors++;
      snprintf(w->message, sizeof w->message, "thread %d saw \"%s\"", w->index, nnrt_last_error_message());
    }
    /* A success leaves the message of the last failure as it was. */
    if (nnrt_model_num_labels(model, &n) != NNRT_OK || strstr(nnrt_last_error_message(), expected) == NULL) w->errors++;
  }
  return NULL;
}

/* The model freed under a running prediction: the predicting thread's side. */
typedef struct freed_while_predicting {
  nnrt_model *model;
  nnrt_predict_options *options;
  volatile int in_network;
  nnrt_status status;
} freed_while_predicting;

static int32_t note_network(uint32_t stage, double fraction, void *user_data) {
  (void)fraction;
  if (stage == NNRT_STAGE_NETWORK) ((freed_while_predicting *)user_data)->in_network = 1;
  return 0;
}

static void *predict_until_freed(void *arg) {
  freed_while_predicting *f = (freed_while_predicting *)arg;
  nnrt_result *result = NULL;
  f->status = nnrt_predict(f->model, &volume, f->options, &result);
  nnrt_result_free(result);
  return NULL;
}

/* Frees a model while another thread predicts with mirroring on (8 forwards per tile). */
static int free_during_prediction(const char *model_dir) {
  freed_while_predicting f;
  pthread_t thread;
  memset(&f, 0, sizeof f);
  if (nnrt_model_load(model_dir, NULL, &f.model) != NNRT_OK || nnrt_predict_options_new(&f.options) != NNRT_OK ||
      nnrt_predict_options_set_progress(f.options, note_network, &f) != NNRT_OK) {
    fprintf(stderr, "threads: setup of the free test failed: %s\n", nnrt_last_error_message());
    return 1;
  }
  if (pthread_create(&thread, NULL, predict_until_freed, &f) != 0) return 1;
  while (!f.in_network) sched_yield();
  nnrt_model_free(f.model); /* cancels the prediction and returns once it has */
  pthread_join(thread, NULL);
  nnrt_predict_options_free(f.options);
  printf("threads: model freed during a prediction, which returned %s\n", nnrt_status_str(f.status));
  return f.status == NNRT_CANCELLED || f.status == NNRT_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  worker workers[MAX_THREADS];
  nnrt_options *load_options = NULL;
  nnrt_predict_options *predict_options = NULL;
  nnrt_model *loaded = NULL;
  nnrt_result *result = NULL;
  const void *labels = NULL;
  const char *fold = "0";
  uint32_t dtype = 0;
  size_t dims[3], x, y, z, foreground = 0;
  int threads, i, total = 0, failed = 0;

  if (argc != 4 || (threads = atoi(argv[2])) < 1 || threads > MAX_THREADS || (predictions_per_thread = atoi(argv[3])) < 1) {
    fprintf(stderr, "usage: %s MODEL_DIR THREADS PREDICTIONS_PER_THREAD\n", argv[0]);
    return 2;
  }
  for (z = 0; z < NZ; z++) {
    for (y = 0; y < NY; y++) {
      for (x = 0; x < NX; x++) {
        double dx = ((double)x - 24.0) / 14.0, dy = ((double)y - 16.0) / 9.0, dz = ((double)z - 8.0) / 5.0;
        double r = dx * dx + dy * dy + dz * dz;
        voxels[(z * NY + y) * NX + x] = (int16_t)(r < 0.2 ? 110 : r < 1.0 ? 40 : -90 + (int)((x * 5 + y * 3 + z) % 13));
      }
    }
  }
  volume.struct_size = sizeof volume;
  volume.data = voxels;
  volume.dtype = NNRT_DTYPE_I16;
  volume.dims[0] = NX;
  volume.dims[1] = NY;
  volume.dims[2] = NZ;
  volume.channels = 1;
  volume.spacing[0] = volume.spacing[1] = 0.75;
  volume.spacing[2] = 2.0;
  volume.direction[0] = volume.direction[4] = volume.direction[8] = 1.0;

  if (nnrt_options_new(&load_options) != NNRT_OK || nnrt_options_set_folds(load_options, &fold, 1) != NNRT_OK ||
      nnrt_options_set_threads(load_options, 1) != NNRT_OK || nnrt_model_load(argv[1], load_options, &loaded) != NNRT_OK ||
      nnrt_predict_options_new(&predict_options) != NNRT_OK || nnrt_predict_options_set_tta(predict_options, 0) != NNRT_OK ||
      nnrt_predict(loaded, &volume, predict_options, &result) != NNRT_OK ||
      nnrt_result_labels(result, &labels, &dtype, dims) != NNRT_OK || dtype != NNRT_DTYPE_U8) {
    fprintf(stderr, "threads: setup failed: %s\n", nnrt_last_error_message());
    return 1;
  }
  memcpy(reference, labels, NVOX);
  nnrt_result_free(result);
  for (x = 0; x < NVOX; x++) foreground += reference[x] != 0;
  model = loaded;
  options = predict_options;

  for (i = 0; i < threads; i++) {
    memset(&workers[i], 0, sizeof workers[i]);
    workers[i].index = i;
    if (pthread_create(&workers[i].thread, NULL, work, &workers[i]) != 0) {
      fprintf(stderr, "threads: cannot start thread %d\n", i);
      return 1;
    }
  }
  for (i = 0; i < threads; i++) {
    pthread_join(workers[i].thread, NULL);
    total += workers[i].done;
    if (workers[i].mismatches || workers[i].errors || workers[i].done != predictions_per_thread) {
      failed = 1;
      fprintf(stderr, "thread %d: %d done, %d differing, %d errors %s\n", i, workers[i].done, workers[i].mismatches,
              workers[i].errors, workers[i].message);
    }
  }
  nnrt_predict_options_free(predict_options);
  nnrt_options_free(load_options);
  nnrt_model_free(loaded);
  printf("threads: %d predictions on %d threads, %lu foreground voxels each, %s\n", total, threads,
         (unsigned long)foreground, failed ? "FAILED" : "all identical");
  return failed | free_during_prediction(argv[1]);
}
