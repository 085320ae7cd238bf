// Node addon over the ONNX Runtime C API for the bundle's fused decoder graph (graphs.decoder_fused,
// docs/bundle-format.md): the KV cache lives in buffers allocated once ([batch, kv_heads, capacity, head_dim] per
// layer and kind) and bound as both past and present, so GroupQueryAttention appends in place and the cache never
// leaves the device. `step` decodes one position for every row with all I/O bound once (ORT can capture it in a
// CUDA graph); `forward` runs any number of positions for consecutive rows (a prefill, batched or not) through a view
// of those rows' buffers.
//
// ONNX Runtime and, for the CUDA EP, the CUDA runtime are opened with dlopen at `init`, so the addon builds and
// runs its CPU tests without any GPU library present.
#include <dlfcn.h>
#include <math.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lvr_ops.h"
#include "onnxruntime_c_api.h"

#include "glibc_compat.h"

enum { H2D = 1, D2H = 2, D2D = 3 };
typedef int (*cuda_memcpy_fn)(void *, const void *, size_t, int);
typedef int (*cuda_malloc_fn)(void **, size_t);
typedef int (*cuda_free_fn)(void *);
typedef int (*cuda_memset_fn)(void *, int, size_t);
typedef int (*cuda_set_device_fn)(int);

static const OrtApiBase *ort_base = NULL;
static const OrtApi *ort = NULL;
static OrtEnv *ort_env = NULL;
static struct {
  cuda_memcpy_fn memcpy;
  cuda_malloc_fn malloc;
  cuda_free_fn free;
  cuda_memset_fn memset;
  cuda_set_device_fn set_device;
} cuda = {0};

// The most step sizes (`stepSizes`): powers of two up to 2^15 slots and the batch.
#define MAX_STEP_SIZES 17
// The most stepAsync calls pending at once (queued on the step thread, run in order).
#define MAX_PENDING_STEPS 8

typedef struct {
  OrtSession *session;
  // Steps of at least `mixed_gemm_from` slots run through `large_session` (NULL: none), built with MatMulNBits'
  // mixed-input GEMM; every other step and every forward through `session`.
  OrtSession *large_session;
  int mixed_gemm_from;
  OrtMemoryInfo *mem;     // where the decoder's tensors live (Cuda or Cpu)
  OrtMemoryInfo *cpu_mem; // total_sequence_length is a CPU input of GroupQueryAttention
  // One bound step per size: size k runs slots 0..sizes[k]-1 (its own IoBinding over the buffers' first rows and,
  // with CUDA graphs, its own captured graph); a step runs the smallest size covering its rows.
  int n_sizes;
  int sizes[MAX_STEP_SIZES];
  OrtIoBinding *step_io[MAX_STEP_SIZES];
  OrtRunOptions *step_run[MAX_STEP_SIZES];
  OrtRunOptions *forward_run;
  int on_gpu, device, batch, capacity, layers, kv_heads, head_dim, hidden, vocab, top_k;
  size_t elem; // bytes per activation / KV element (2: fp16, 4: fp32)
  void **kv;   // 2 * layers buffers
  void *embeds, *positions, *seqlens, *last_index, *logits, *hidden_out, *top_values, *top_ids;
  void *kept_logits; // the logits before the last stepAsync (lastLogits(..., kept = true) reads them)
  size_t step_rows;  // slots the last step ran: the rows of `logits` it wrote
  int32_t total;
  void *scratch[8];       // forward's inputs and outputs, grown as needed and kept (no allocation per prefill)
  size_t scratch_size[8];
  size_t forward_rows;    // rows of the last forward, whose logits stay in scratch[4] (forwardLogits reads them)
  OrtValue **owned;
  int n_owned;
  // Steps run on one thread of their own (the CUDA graph is captured and replayed there), in the order they were
  // submitted: `step` waits for its job, `stepAsync` resolves a promise through `tsfn` while the JS thread goes on.
  // `busy`: stepAsync calls not settled yet.
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  int sync_init, thread_started, quit, busy, released;
  struct StepJob *queue_head, *queue_tail;
  napi_threadsafe_function tsfn;
  // A step can feed a slot the token its pick rule takes from the previous step's top candidates (`tokens[b]` =
  // FEED_PICK) without a trip through JS: the host token embedding [vocab, hidden] in the activation dtype
  // (`setEmbeddings`, kept alive by `embed_ref`), each slot's previous top K (`prev_*`, `prev_valid[b]` = 0 when the
  // last run did not return slot b), its repetition penalty and the tokens it has seen (a bit per vocabulary id,
  // `setPickRule`, then every token step adds its input).
  const char *embed_table;
  napi_ref embed_ref;
  float *prev_values;
  int64_t *prev_ids;
  uint8_t *prev_valid;
  float *penalty;
  uint8_t *seen; // [batch * seen_bytes], allocated by the first setPickRule with a penalty
  size_t seen_bytes;
} Decoder;

// One step's inputs (copied from the JS arrays) and outputs (host copies of the requested rows).
typedef struct StepJob {
  int size;         // index into Decoder.sizes: the step runs slots 0..sizes[size]-1 (S of them)
  void *embeds;     // [S*H] or NULL
  uint8_t *latent;  // [S] or NULL
  int64_t *positions; // [3*S]
  int32_t *seqlens, *rows, *full;
  int32_t *tokens;  // [S] or NULL: each slot's token input (`step`'s `tokens`)
  int32_t *fed;     // [S]: the token picked for each FEED_PICK or PICK_UNFED slot (-1 elsewhere)
  int32_t total;
  size_t n, n_full;
  char *logits, *hidden, *top_values, *top_ids;
  int async, done, failed;
  int ran; // it got past its picks: the decoder's state (logits, kept logits, seen tokens) moved
  napi_deferred deferred;
  struct StepJob *next; // the step thread's queue
  char error[512];
} StepJob;

// -- errors -------------------------------------------------------------------------------------------------------
static int throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, "LVR_NATIVE", msg);
  return 0;
}

static int ort_ok(napi_env env, OrtStatus *st, const char *what) {
  if (st == NULL) return 1;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s: %s", what, ort->GetErrorMessage(st));
  ort->ReleaseStatus(st);
  return throw_msg(env, buf);
}

static int cuda_ok(napi_env env, int rc, const char *what) {
  if (rc == 0) return 1;
  char buf[256];
  snprintf(buf, sizeof buf, "%s: CUDA error %d", what, rc);
  return throw_msg(env, buf);
}

#define ORT_TRY(env, expr, what) \
  if (!ort_ok(env, (expr), what)) goto fail
#define CHECK(cond) \
  if (!(cond)) goto fail

// -- device memory --------------------------------------------------------------------------------------------------
static void *dev_alloc(napi_env env, Decoder *d, size_t bytes) {
  void *p = NULL;
  if (d->on_gpu) {
    if (!cuda_ok(env, cuda.malloc(&p, bytes), "cudaMalloc")) return NULL;
    if (!cuda_ok(env, cuda.memset(p, 0, bytes), "cudaMemset")) return NULL;
  } else if ((p = calloc(1, bytes)) == NULL) {
    throw_msg(env, "out of host memory");
  }
  return p;
}

static void dev_free(Decoder *d, void *p) {
  if (p == NULL) return;
  if (d->on_gpu) cuda.free(p);
  else free(p);
}

// 0 or a CUDA error code (memmove on the CPU EP); safe off the JS thread.
static int copy_raw(Decoder *d, void *dst, const void *src, size_t bytes, int kind) {
  if (!d->on_gpu) {
    memmove(dst, src, bytes);
    return 0;
  }
  return cuda.memcpy(dst, src, bytes, kind);
}

static int copy(napi_env env, Decoder *d, void *dst, const void *src, size_t bytes, int kind) {
  return cuda_ok(env, copy_raw(d, dst, src, bytes, kind), "cudaMemcpy");
}

// Scratch buffer `i` of at least `bytes` (its contents are not kept when it grows).
static void *scratch(napi_env env, Decoder *d, int i, size_t bytes) {
  if (d->scratch_size[i] >= bytes) return d->scratch[i];
  dev_free(d, d->scratch[i]);
  d->scratch_size[i] = 0;
  if ((d->scratch[i] = dev_alloc(env, d, bytes)) == NULL) return NULL;
  d->scratch_size[i] = bytes;
  return d->scratch[i];
}

// -- argument helpers ---------------------------------------------------------------------------------------------
// An option set to undefined or null counts as absent.
static int has_option(napi_env env, napi_value obj, const char *key, napi_value *value) {
  bool has = false;
  napi_has_named_property(env, obj, key, &has);
  if (!has) return 0;
  napi_valuetype t;
  napi_get_named_property(env, obj, key, value);
  napi_typeof(env, *value, &t);
  return t != napi_undefined && t != napi_null;
}

static int get_int(napi_env env, napi_value obj, const char *key, int fallback, int *out) {
  napi_value v;
  if (!has_option(env, obj, key, &v)) {
    if (fallback < 0) {
      char buf[128];
      snprintf(buf, sizeof buf, "option %s is required", key);
      return throw_msg(env, buf);
    }
    *out = fallback;
    return 1;
  }
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    char buf[128];
    snprintf(buf, sizeof buf, "option %s must be a number", key);
    return throw_msg(env, buf);
  }
  return 1;
}

static int get_bool(napi_env env, napi_value obj, const char *key, int *out) {
  bool b = false;
  napi_value v;
  *out = 0;
  if (!has_option(env, obj, key, &v)) return 1;
  if (napi_get_value_bool(env, v, &b) != napi_ok) {
    char buf[128];
    snprintf(buf, sizeof buf, "option %s must be a boolean", key);
    return throw_msg(env, buf);
  }
  *out = b;
  return 1;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, buf, cap, &n) != napi_ok) return throw_msg(env, "expected a string");
  return 1;
}

// -- kernel switches ----------------------------------------------------------------------------------------------
// ONNX Runtime's CUDA kernels read some choices from environment variables while a session builds its kernels: a
// session is created with its switches set and the process environment is restored right after.
//   attention "xqa" | "cudnn" | "flash": GroupQueryAttention's decode kernel (its XQA kernel, ONNX Runtime's default;
//   cuDNN's flash attention; its own flash attention);
//   the large-step session: MatMulNBits through its CUTLASS mixed-input GEMM (weights prepacked at load) instead of
//   dequantizing int4 weights every step when a step has many rows.
#define MAX_SWITCHES 3
typedef struct {
  int n;
  const char *name[MAX_SWITCHES];
  const char *value[MAX_SWITCHES]; // NULL: unset while the session is built
} KernelSwitches;

static void switch_set(KernelSwitches *k, const char *name, const char *value) {
  k->name[k->n] = name;
  k->value[k->n++] = value;
}

// Reads the optional `attention` option into `k`; 0 after throwing.
static int attention_switches(napi_env env, napi_value opts, KernelSwitches *k) {
  napi_value v;
  char kind[16];
  if (!has_option(env, opts, "attention", &v)) return 1;
  if (!get_string(env, v, kind, sizeof kind)) return 0;
  int xqa = strcmp(kind, "xqa") == 0, cudnn = strcmp(kind, "cudnn") == 0, flash = strcmp(kind, "flash") == 0;
  if (!xqa && !cudnn && !flash) return throw_msg(env, "attention must be \"xqa\", \"cudnn\" or \"flash\"");
  switch_set(k, "ORT_ENABLE_XQA", xqa ? "1" : "0");
  switch_set(k, "ORT_ENABLE_CUDNN_FLASH_ATTENTION", cudnn ? "1" : xqa ? NULL : "0");
  return 1;
}

static OrtStatus *create_session(const char *model, OrtSessionOptions *so, const KernelSwitches *k, OrtSession **out) {
  char *saved[MAX_SWITCHES] = {0};
  int had[MAX_SWITCHES] = {0};
  for (int i = 0; i < k->n; i++) {
    const char *old = getenv(k->name[i]);
    had[i] = old != NULL;
    saved[i] = old ? strdup(old) : NULL;
    if (k->value[i]) setenv(k->name[i], k->value[i], 1);
    else unsetenv(k->name[i]);
  }
  OrtStatus *st = ort->CreateSession(ort_env, model, so, out);
  for (int i = 0; i < k->n; i++) {
    if (had[i]) setenv(k->name[i], saved[i], 1);
    else unsetenv(k->name[i]);
    free(saved[i]);
  }
  return st;
}

// Bytes of a typed array argument; fails unless it holds exactly `want` bytes (0: any).
static void *typed_bytes(napi_env env, napi_value v, size_t want, const char *what) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s must be a typed array", what);
    throw_msg(env, buf);
    return NULL;
  }
  napi_typedarray_type t;
  size_t len, off;
  void *data;
  napi_value ab;
  napi_get_typedarray_info(env, v, &t, &len, &data, &ab, &off);
  size_t el = (t == napi_int8_array || t == napi_uint8_array || t == napi_uint8_clamped_array) ? 1
              : (t == napi_int16_array || t == napi_uint16_array)                                ? 2
              : (t == napi_float64_array || t == napi_bigint64_array || t == napi_biguint64_array) ? 8
                                                                                                   : 4;
  if (want && len * el != want) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s holds %zu bytes, expected %zu", what, len * el, want);
    throw_msg(env, buf);
    return NULL;
  }
  return data;
}

static napi_value new_float32(napi_env env, size_t n, void **data) {
  napi_value ab, arr;
  napi_create_arraybuffer(env, n * 4, data, &ab);
  napi_create_typedarray(env, napi_float32_array, n, ab, 0, &arr);
  return arr;
}

static napi_value new_activations(napi_env env, Decoder *d, size_t n, void **data) {
  napi_value ab, arr;
  napi_create_arraybuffer(env, n * d->elem, data, &ab);
  napi_create_typedarray(env, d->elem == 2 ? napi_uint16_array : napi_float32_array, n, ab, 0, &arr);
  return arr;
}

// -- tensors --------------------------------------------------------------------------------------------------------
static OrtValue *tensor(napi_env env, Decoder *d, OrtMemoryInfo *mem, void *data, size_t bytes, const int64_t *shape,
                        size_t rank, ONNXTensorElementDataType type) {
  OrtValue *v = NULL;
  if (!ort_ok(env, ort->CreateTensorWithDataAsOrtValue(mem, data, bytes, shape, rank, type, &v), "tensor")) return NULL;
  return v;
}

static ONNXTensorElementDataType act_type(Decoder *d) {
  return d->elem == 2 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

static size_t kv_row_bytes(Decoder *d) {
  return (size_t)d->kv_heads * d->capacity * d->head_dim * d->elem;
}

static int bind_kv(napi_env env, Decoder *d, OrtIoBinding *io, int row, int rows, OrtValue **made) {
  int64_t shape[4] = {rows, d->kv_heads, d->capacity, d->head_dim};
  char name[64];
  for (int i = 0; i < 2 * d->layers; i++) {
    char *base = (char *)d->kv[i] + (size_t)row * kv_row_bytes(d);
    OrtValue *v = tensor(env, d, d->mem, base, rows * kv_row_bytes(d), shape, 4, act_type(d));
    if (v == NULL) return 0;
    made[i] = v;
    const char *kind = i % 2 ? "value" : "key";
    snprintf(name, sizeof name, "past_key_values.%d.%s", i / 2, kind);
    if (!ort_ok(env, ort->BindInput(io, name, v), "bind past")) return 0;
    snprintf(name, sizeof name, "present.%d.%s", i / 2, kind);
    if (!ort_ok(env, ort->BindOutput(io, name, v), "bind present")) return 0;
  }
  return 1;
}

// Values a bound step owns: its KV views and 9 others.
static int step_values(Decoder *d) {
  return 2 * d->layers + 9;
}

static OrtSession *step_session(Decoder *d, int k) {
  return d->large_session && d->sizes[k] >= d->mixed_gemm_from ? d->large_session : d->session;
}

// Binds step size k: the first sizes[k] rows of every step buffer and KV buffer; its values go to d->owned.
static int bind_step(napi_env env, Decoder *d, int k) {
  size_t S = d->sizes[k];
  OrtIoBinding *io;
  OrtValue **kv = d->owned + k * step_values(d), **o = kv + 2 * d->layers;
  if (!ort_ok(env, ort->CreateIoBinding(step_session(d, k), &d->step_io[k]), "CreateIoBinding")) return 0;
  io = d->step_io[k];
  int64_t emb_shape[3] = {S, 1, d->hidden}, pos_shape[3] = {3, S, 1}, s_shape[1] = {S};
  int64_t logit_shape[2] = {S, d->vocab}, hid_shape[2] = {S, d->hidden}, top_shape[2] = {S, d->top_k};
  const ONNXTensorElementDataType i32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, i64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
                                  f32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if (!(o[0] = tensor(env, d, d->mem, d->embeds, S * d->hidden * d->elem, emb_shape, 3, act_type(d))) ||
      !(o[1] = tensor(env, d, d->mem, d->positions, 3 * S * 8, pos_shape, 3, i64)) ||
      !(o[2] = tensor(env, d, d->mem, d->seqlens, S * 4, s_shape, 1, i32)) ||
      !(o[3] = tensor(env, d, d->cpu_mem, &d->total, 4, NULL, 0, i32)) ||
      !(o[4] = tensor(env, d, d->mem, d->logits, S * d->vocab * 4, logit_shape, 2, f32)) ||
      !(o[5] = tensor(env, d, d->mem, d->hidden_out, S * d->hidden * d->elem, hid_shape, 2, act_type(d))) ||
      !(o[8] = tensor(env, d, d->mem, d->last_index, S * 8, s_shape, 1, i64)))
    return 0;
  if (!ort_ok(env, ort->BindInput(io, "inputs_embeds", o[0]), "bind inputs_embeds") ||
      !ort_ok(env, ort->BindInput(io, "position_ids", o[1]), "bind position_ids") ||
      !ort_ok(env, ort->BindInput(io, "seqlens_k", o[2]), "bind seqlens_k") ||
      !ort_ok(env, ort->BindInput(io, "total_sequence_length", o[3]), "bind total_sequence_length") ||
      !ort_ok(env, ort->BindInput(io, "last_index", o[8]), "bind last_index") ||
      !ort_ok(env, ort->BindOutput(io, "logits", o[4]), "bind logits") ||
      !ort_ok(env, ort->BindOutput(io, "last_hidden_state", o[5]), "bind last_hidden_state") ||
      !bind_kv(env, d, io, 0, (int)S, kv))
    return 0;
  if (d->top_k > 0 &&
      (!(o[6] = tensor(env, d, d->mem, d->top_values, S * d->top_k * 4, top_shape, 2, f32)) ||
       !(o[7] = tensor(env, d, d->mem, d->top_ids, S * d->top_k * 8, top_shape, 2, i64)) ||
       !ort_ok(env, ort->BindOutput(io, "top_logits", o[6]), "bind top_logits") ||
       !ort_ok(env, ort->BindOutput(io, "top_ids", o[7]), "bind top_ids")))
    return 0;
  return 1;
}

// Reads the optional `stepSizes` option (ascending slot counts, each 1..batch) into d->sizes, the batch appended when
// missing; absent: the batch alone.
static int get_step_sizes(napi_env env, napi_value opts, Decoder *d) {
  napi_value arr;
  uint32_t len = 0;
  d->n_sizes = 0;
  if (has_option(env, opts, "stepSizes", &arr)) {
    bool is_array = false;
    napi_is_array(env, arr, &is_array);
    if (!is_array) return throw_msg(env, "stepSizes must be an array of slot counts");
    napi_get_array_length(env, arr, &len);
    if (len >= MAX_STEP_SIZES) return throw_msg(env, "stepSizes: too many sizes");
    for (uint32_t i = 0; i < len; i++) {
      napi_value v;
      int32_t size;
      napi_get_element(env, arr, i, &v);
      if (napi_get_value_int32(env, v, &size) != napi_ok || size < 1 || size > d->batch ||
          (i > 0 && size <= d->sizes[i - 1]))
        return throw_msg(env, "stepSizes must ascend, each from 1 to batch");
      d->sizes[d->n_sizes++] = size;
    }
  }
  if (d->n_sizes == 0 || d->sizes[d->n_sizes - 1] != d->batch) d->sizes[d->n_sizes++] = d->batch;
  return 1;
}

// -- lifecycle ------------------------------------------------------------------------------------------------------
static void stop_thread(Decoder *d);
static void step_thread(void *arg);
static void step_done(napi_env env, napi_value js_cb, void *context, void *data);

static void release_decoder(Decoder *d) {
  if (d == NULL) return;
  stop_thread(d);
  for (int i = 0; i < d->n_owned; i++)
    if (d->owned[i]) ort->ReleaseValue(d->owned[i]);
  free(d->owned);
  for (int k = 0; k < d->n_sizes; k++) {
    if (d->step_io[k]) ort->ReleaseIoBinding(d->step_io[k]);
    if (d->step_run[k]) ort->ReleaseRunOptions(d->step_run[k]);
  }
  if (d->forward_run) ort->ReleaseRunOptions(d->forward_run);
  if (d->session) ort->ReleaseSession(d->session);
  if (d->large_session) ort->ReleaseSession(d->large_session);
  if (d->kv) {
    for (int i = 0; i < 2 * d->layers; i++) dev_free(d, d->kv[i]);
    free(d->kv);
  }
  void *bufs[] = {d->embeds, d->positions, d->seqlens, d->last_index, d->logits, d->hidden_out, d->top_values,
                  d->top_ids, d->kept_logits};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dev_free(d, bufs[i]);
  for (size_t i = 0; i < sizeof d->scratch / sizeof d->scratch[0]; i++) dev_free(d, d->scratch[i]);
  void *picks[] = {d->prev_values, d->prev_ids, d->prev_valid, d->penalty, d->seen};
  for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) free(picks[i]);
  if (d->mem) ort->ReleaseMemoryInfo(d->mem);
  if (d->cpu_mem) ort->ReleaseMemoryInfo(d->cpu_mem);
  if (d->sync_init) {
    uv_mutex_destroy(&d->mu);
    uv_cond_destroy(&d->cv);
  }
  // Node may finalize the step function first (environment teardown): then `tsfn_finalized` cleared it and `d` goes
  // now; otherwise `d` goes when the released function is finalized.
  d->released = 1;
  if (d->tsfn) napi_release_threadsafe_function(d->tsfn, napi_tsfn_release);
  else free(d);
}

static void tsfn_finalized(napi_env env, void *data, void *hint) {
  Decoder *d = data;
  d->tsfn = NULL;
  if (d->released) free(d);
}

static void finalize_decoder(napi_env env, void *data, void *hint) {
  (void)hint;
  Decoder *d = data;
  napi_ref table = d->embed_ref; // the step thread may read the table until release_decoder has stopped it
  release_decoder(d);
  if (table) napi_delete_reference(env, table);
}

// init(libonnxruntimePath, cudartPath?) -> ORT version string
static napi_value js_init(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[4096];
  if (argc < 1 || !get_string(env, argv[0], path, sizeof path)) return NULL;
  if (ort == NULL) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (lib == NULL) {
      throw_msg(env, dlerror());
      return NULL;
    }
    const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(lib, "OrtGetApiBase");
    if (get_base == NULL) {
      throw_msg(env, "OrtGetApiBase not found in the ONNX Runtime library");
      return NULL;
    }
    const OrtApi *api = get_base()->GetApi(ORT_API_VERSION);
    if (api == NULL) {
      throw_msg(env, "the ONNX Runtime library does not provide the C API version this addon was built for");
      return NULL;
    }
    ort = api;
    ort_base = get_base();
    if (!ort_ok(env, ort->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "lvr", &ort_env), "CreateEnv")) return NULL;
  }
  if (argc > 1 && cuda.memcpy == NULL) {
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    if (t == napi_string) {
      if (!get_string(env, argv[1], path, sizeof path)) return NULL;
      void *rt = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
      if (rt == NULL) {
        throw_msg(env, dlerror());
        return NULL;
      }
      cuda.memcpy = (cuda_memcpy_fn)dlsym(rt, "cudaMemcpy");
      cuda.malloc = (cuda_malloc_fn)dlsym(rt, "cudaMalloc");
      cuda.free = (cuda_free_fn)dlsym(rt, "cudaFree");
      cuda.memset = (cuda_memset_fn)dlsym(rt, "cudaMemset");
      cuda.set_device = (cuda_set_device_fn)dlsym(rt, "cudaSetDevice");
      if (!cuda.memcpy || !cuda.malloc || !cuda.free || !cuda.memset || !cuda.set_device) {
        cuda.memcpy = NULL;
        throw_msg(env, "the CUDA runtime library lacks cudaMemcpy/cudaMalloc/cudaFree/cudaMemset/cudaSetDevice");
        return NULL;
      }
    }
  }
  napi_value out;
  napi_create_string_utf8(env, ort_base->GetVersionString(), NAPI_AUTO_LENGTH, &out);
  return out;
}

// Whether the session's graph has input `name`; throws `missing` when it has not.
static int has_input(napi_env env, OrtSession *session, const char *name, const char *missing) {
  OrtAllocator *alloc = NULL;
  size_t n = 0;
  int found = 0;
  if (!ort_ok(env, ort->GetAllocatorWithDefaultOptions(&alloc), "allocator") ||
      !ort_ok(env, ort->SessionGetInputCount(session, &n), "SessionGetInputCount"))
    return 0;
  for (size_t i = 0; i < n && !found; i++) {
    char *got = NULL;
    if (!ort_ok(env, ort->SessionGetInputName(session, i, alloc, &got), "SessionGetInputName")) return 0;
    found = strcmp(got, name) == 0;
    alloc->Free(alloc, got);
  }
  return found ? 1 : throw_msg(env, missing);
}

// createDecoder({model, gpu, device, cudaGraph, threads, batch, capacity, layers, kvHeads, headDim, hidden, vocab,
//                fp16, topK, stepSizes, attention}) -> handle; topK > 0: the graph's top_logits / top_ids outputs (K =
// topK) come back too; stepSizes (ascending slot counts, default [batch]): the step sizes bound (and captured) at
// creation; attention ("xqa" | "cudnn" | "flash", CUDA EP; default: ONNX Runtime's choice): GroupQueryAttention's
// decode kernel; mixedGemmFrom (default 0: off): steps of at least this many slots run through a second session whose
// MatMulNBits use the mixed-input GEMM (int4 bundles on the CUDA EP; a second copy of the weights); lvrOps (default
// false): register the lvr custom ops (lvr_ops.h) that graphs.decoder_fused_lvr uses, on the CUDA EP compiled by NVRTC
// (nvrtcLibrary: its path; default libnvrtc.so.13 / .12 from the library path); throws why when they are not
// available
static napi_value js_create_decoder(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  napi_get_cb_info(env, info, &argc, &opts, NULL, NULL);
  if (ort == NULL) {
    throw_msg(env, "call init() first");
    return NULL;
  }
  Decoder *d = calloc(1, sizeof(Decoder));
  OrtSessionOptions *so = NULL;
  OrtCUDAProviderOptionsV2 *cuda_opts = NULL;
  KernelSwitches switches = {0};
  int graph = 0, fp16 = 0, threads = 0, lvr_ops = 0;
  char model[4096], nvrtc[4096] = "";
  napi_value mv;
  CHECK(argc == 1);
  napi_get_named_property(env, opts, "model", &mv);
  CHECK(get_string(env, mv, model, sizeof model));
  CHECK(get_bool(env, opts, "gpu", &d->on_gpu) && get_bool(env, opts, "cudaGraph", &graph) &&
        get_bool(env, opts, "fp16", &fp16));
  CHECK(get_int(env, opts, "device", 0, &d->device) && get_int(env, opts, "threads", 0, &threads) &&
        get_int(env, opts, "batch", -1, &d->batch) && get_int(env, opts, "capacity", -1, &d->capacity) &&
        get_int(env, opts, "layers", -1, &d->layers) && get_int(env, opts, "kvHeads", -1, &d->kv_heads) &&
        get_int(env, opts, "headDim", -1, &d->head_dim) && get_int(env, opts, "hidden", -1, &d->hidden) &&
        get_int(env, opts, "vocab", -1, &d->vocab) && get_int(env, opts, "topK", 0, &d->top_k));
  if (d->batch < 1 || d->capacity < 1 || d->layers < 1) {
    throw_msg(env, "batch, capacity and layers must be >= 1");
    goto fail;
  }
  CHECK(get_step_sizes(env, opts, d));
  CHECK(attention_switches(env, opts, &switches));
  CHECK(get_bool(env, opts, "lvrOps", &lvr_ops));
  if (has_option(env, opts, "nvrtcLibrary", &mv)) CHECK(get_string(env, mv, nvrtc, sizeof nvrtc));
  CHECK(get_int(env, opts, "mixedGemmFrom", 0, &d->mixed_gemm_from));
  if (d->mixed_gemm_from < 0 || d->mixed_gemm_from > d->batch) {
    throw_msg(env, "mixedGemmFrom must be from 0 (off) to batch");
    goto fail;
  }
  if (d->on_gpu && cuda.memcpy == NULL) {
    throw_msg(env, "gpu: true needs init() with the CUDA runtime library path");
    goto fail;
  }
  d->elem = fp16 ? 2 : 4;
  if (d->on_gpu) CHECK(cuda_ok(env, cuda.set_device(d->device), "cudaSetDevice"));
  ORT_TRY(env, ort->CreateSessionOptions(&so), "CreateSessionOptions");
  if (threads > 0) ORT_TRY(env, ort->SetIntraOpNumThreads(so, threads), "SetIntraOpNumThreads");
  if (lvr_ops) {
    const LvrCudaRuntime rt = {cuda.malloc, cuda.set_device, cuda.free};
    const char *why = lvr_ops_register(ort, so, d->on_gpu, d->device, nvrtc[0] ? nvrtc : NULL, &rt);
    if (why) {
      throw_msg(env, why);
      goto fail;
    }
  }
  if (d->on_gpu) {
    char dev[16];
    snprintf(dev, sizeof dev, "%d", d->device);
    const char *keys[] = {"device_id", "enable_cuda_graph"};
    const char *vals[] = {dev, graph ? "1" : "0"};
    ORT_TRY(env, ort->CreateCUDAProviderOptions(&cuda_opts), "CreateCUDAProviderOptions");
    ORT_TRY(env, ort->UpdateCUDAProviderOptions(cuda_opts, keys, vals, 2), "UpdateCUDAProviderOptions");
    ORT_TRY(env, ort->SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda_opts), "append CUDA provider");
  }
  CHECK(ort_ok(env, create_session(model, so, &switches, &d->session), "CreateSession"));
  if (d->mixed_gemm_from > 0) {
    switch_set(&switches, "ORT_FPA_INTB_GEMM", "1");
    CHECK(ort_ok(env, create_session(model, so, &switches, &d->large_session), "CreateSession (large steps)"));
  }
  CHECK(has_input(env, d->session, "last_index",
                  "decoder_fused.onnx has no last_index input (an older export): re-export the bundle with "
                  "--fused-decoder"));
  ORT_TRY(env, ort->CreateMemoryInfo(d->on_gpu ? "Cuda" : "Cpu", OrtDeviceAllocator, d->on_gpu ? d->device : 0,
                                     OrtMemTypeDefault, &d->mem),
          "CreateMemoryInfo");
  ORT_TRY(env, ort->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &d->cpu_mem), "CreateCpuMemoryInfo");
  ORT_TRY(env, ort->CreateRunOptions(&d->forward_run), "CreateRunOptions");
  for (int k = 0; k < d->n_sizes; k++) {
    ORT_TRY(env, ort->CreateRunOptions(&d->step_run[k]), "CreateRunOptions");
    if (d->on_gpu && graph) {
      // One captured graph per step size (ids from 1); variable-length forwards run uncaptured.
      char id[16];
      snprintf(id, sizeof id, "%d", k + 1);
      ORT_TRY(env, ort->AddRunConfigEntry(d->step_run[k], "gpu_graph_id", id), "gpu_graph_id");
    }
  }
  if (d->on_gpu && graph) ORT_TRY(env, ort->AddRunConfigEntry(d->forward_run, "gpu_graph_id", "-1"), "gpu_graph_id");
  d->kv = calloc(2 * d->layers, sizeof(void *));
  for (int i = 0; i < 2 * d->layers; i++) CHECK((d->kv[i] = dev_alloc(env, d, d->batch * kv_row_bytes(d))) != NULL);
  size_t B = d->batch;
  CHECK((d->embeds = dev_alloc(env, d, B * d->hidden * d->elem)) != NULL);
  CHECK((d->positions = dev_alloc(env, d, 3 * B * 8)) != NULL);
  CHECK((d->seqlens = dev_alloc(env, d, B * 4)) != NULL);
  CHECK((d->last_index = dev_alloc(env, d, B * 8)) != NULL); // zeros: a step has one position per row
  CHECK((d->logits = dev_alloc(env, d, B * d->vocab * 4)) != NULL);
  CHECK((d->hidden_out = dev_alloc(env, d, B * d->hidden * d->elem)) != NULL);
  if (d->top_k > 0) {
    CHECK((d->top_values = dev_alloc(env, d, B * d->top_k * 4)) != NULL);
    CHECK((d->top_ids = dev_alloc(env, d, B * d->top_k * 8)) != NULL);
  }
  size_t K = d->top_k ? d->top_k : 1;
  CHECK((d->prev_values = malloc(B * K * 4)) && (d->prev_ids = malloc(B * K * 8)) &&
        (d->prev_valid = calloc(B, 1)) && (d->penalty = malloc(B * 4)));
  for (size_t b = 0; b < B; b++) d->penalty[b] = 1.0f;
  d->seen_bytes = ((size_t)d->vocab + 7) / 8;
  d->n_owned = d->n_sizes * step_values(d);
  d->owned = calloc(d->n_owned, sizeof(OrtValue *));
  for (int k = 0; k < d->n_sizes; k++) CHECK(bind_step(env, d, k));
  if (cuda_opts) ort->ReleaseCUDAProviderOptions(cuda_opts);
  ort->ReleaseSessionOptions(so);
  uv_mutex_init(&d->mu);
  uv_cond_init(&d->cv);
  d->sync_init = 1;
  {
    napi_value name;
    napi_create_string_utf8(env, "lvr-fused-step", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, d, tsfn_finalized, d, step_done, &d->tsfn) !=
        napi_ok) {
      throw_msg(env, "napi_create_threadsafe_function failed");
      goto fail;
    }
    napi_unref_threadsafe_function(env, d->tsfn);
    if (uv_thread_create(&d->thread, step_thread, d) != 0) {
      throw_msg(env, "could not start the step thread");
      goto fail;
    }
    d->thread_started = 1;
  }
  napi_value handle;
  napi_create_external(env, d, finalize_decoder, NULL, &handle);
  return handle;
fail:
  if (cuda_opts) ort->ReleaseCUDAProviderOptions(cuda_opts);
  if (so) ort->ReleaseSessionOptions(so);
  release_decoder(d);
  return NULL;
}

static Decoder *unwrap(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) throw_msg(env, "expected a decoder handle");
  return (Decoder *)p;
}

// Reads a call's arguments into argv (between `min` and `max` of them; *argc gets the count) and returns the decoder
// handle in argv[0], or NULL after throwing `usage`.
static Decoder *decoder_call(napi_env env, napi_callback_info info, size_t min, size_t max, napi_value *argv,
                             size_t *argc, const char *usage) {
  *argc = max;
  napi_get_cb_info(env, info, argc, argv, NULL, NULL);
  if (*argc < min) {
    throw_msg(env, usage);
    return NULL;
  }
  if (*argc > max) *argc = max;
  return unwrap(env, argv[0]);
}

// Copies rows `rows` (n of them; NULL: rows 0..n-1) of a device array with `row_bytes` per row to `dst`, one copy per
static int not_busy(napi_env env, Decoder *d) {
  return d->busy ? throw_msg(env, "the decoder has a pending stepAsync: await it first") : 1;
}

static void forget_top(Decoder *d) {
  memset(d->prev_valid, 0, d->batch);
}

// run of consecutive rows.
static int gather_raw(Decoder *d, char *dst, const char *src, size_t row_bytes, const int32_t *rows, size_t n) {
  for (size_t k = 0; k < n;) {
    size_t first = rows ? (size_t)rows[k] : k, run = 1;
    while (k + run < n && (rows ? (size_t)rows[k + run] == first + run : 1)) run++;
    int rc = copy_raw(d, dst + k * row_bytes, src + first * row_bytes, run * row_bytes, D2H);
    if (rc) return rc;
    k += run;
  }
  return 0;
}

static int gather_rows(napi_env env, Decoder *d, char *dst, const char *src, size_t row_bytes, const int32_t *rows,
                       size_t n) {
  return cuda_ok(env, gather_raw(d, dst, src, row_bytes, rows, n), "cudaMemcpy");
}

static napi_value logits_rows(napi_env env, Decoder *d, const char *logits, const int32_t *rows, size_t n) {
  char *host;
  napi_value arr = new_float32(env, n * d->vocab, (void **)&host);
  return gather_rows(env, d, host, logits, (size_t)d->vocab * 4, rows, n) ? arr : NULL;
}

// {logits [nFull,V], hidden [n,H]} of the device outputs: logit rows `full` (NULL: rows 0..nFull-1), hidden rows
// 0..n-1.
static napi_value result(napi_env env, Decoder *d, const char *logits, const char *hidden, const int32_t *full,
                         size_t n_full, size_t n) {
  char *hh;
  napi_value out, l = logits_rows(env, d, logits, full, n_full),
                  h = new_activations(env, d, n * d->hidden, (void **)&hh);
  if (l == NULL || !gather_rows(env, d, hh, hidden, (size_t)d->hidden * d->elem, NULL, n)) return NULL;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "logits", l);
  napi_set_named_property(env, out, "hidden", h);
  return out;
}

// Reads an Int32Array argument of row indices (each < limit) into *rows / *n; absent (undefined / null) leaves them.
static int index_list(napi_env env, napi_value v, size_t limit, const int32_t **rows, size_t *n, const char *what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return 1;
  napi_typedarray_type tt;
  void *data;
  napi_value ab;
  size_t off, len;
  char buf[96];
  if (napi_get_typedarray_info(env, v, &tt, &len, &data, &ab, &off) != napi_ok || tt != napi_int32_array) {
    snprintf(buf, sizeof buf, "%s must be an Int32Array", what);
    return throw_msg(env, buf);
  }
  for (size_t k = 0; k < len; k++)
    if (((int32_t *)data)[k] < 0 || (size_t)((int32_t *)data)[k] >= limit) {
      snprintf(buf, sizeof buf, "%s: row out of range", what);
      return throw_msg(env, buf);
    }
  *rows = data;
  *n = len;
  return 1;
}

// index_list over the decoder's slots.
static int slot_list(napi_env env, Decoder *d, napi_value v, const int32_t **rows, size_t *n, const char *what) {
  return index_list(env, v, (size_t)d->batch, rows, n, what);
}

// Sets out.topLogits [n*K] and out.topIds [n*K] (int32) from host copies of the graph's top outputs.
static void set_top(napi_env env, Decoder *d, napi_value out, const float *values, const int64_t *ids64, size_t n) {
  size_t K = d->top_k;
  char *v, *ids32;
  napi_value vals = new_float32(env, n * K, (void **)&v), ab, ids;
  memcpy(v, values, n * K * 4);
  napi_create_arraybuffer(env, n * K * 4, (void **)&ids32, &ab);
  napi_create_typedarray(env, napi_int32_array, n * K, ab, 0, &ids);
  for (size_t i = 0; i < n * K; i++) ((int32_t *)ids32)[i] = (int32_t)ids64[i];
  napi_set_named_property(env, out, "topLogits", vals);
  napi_set_named_property(env, out, "topIds", ids);
}

// forward(handle, row, embeds [n*S*H], positions BigInt64Array [3*n*S], pastLength, lengths? Int32Array [n],
//         full? Int32Array) -> {logits [nFull*V], hidden [n*H], topLogits?, topIds? [n*K]}
// A prefill of rows row .. row+n-1 (n = lengths.length, default 1) in one uncaptured call: row b appends its first
// lengths[b] of S new positions (default S) after pastLength cached ones and returns its outputs at its last one.
// Shorter rows are right-padded: the padding's keys/values land beyond the row's length, where its next step
// overwrites them (padding needs pastLength 0). Each row's last hidden state also becomes its input for a following
// step that flags it latent. Whole logit rows come back for rows `full` (indices 0..n-1, default all), the top K of
// every row when the decoder reads them; the other rows' logits stay readable by forwardLogits until the next forward.
static napi_value js_forward(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[7];
  Decoder *d = decoder_call(env, info, 5, 7, argv, &argc,
                            "forward(handle, row, embeds, positions, pastLength, lengths?, full?)");
  int row, past;
  if (d == NULL || !not_busy(env, d)) return NULL;
  forget_top(d);
  if (napi_get_value_int32(env, argv[1], &row) != napi_ok || napi_get_value_int32(env, argv[4], &past) != napi_ok)
    return throw_msg(env, "row and pastLength must be numbers"), NULL;
  int32_t one_length = 0;
  const int32_t *lengths = NULL;
  size_t n = 1;
  napi_valuetype lt = napi_undefined;
  if (argc > 5) napi_typeof(env, argv[5], &lt);
  if (lt != napi_undefined && lt != napi_null) {
    napi_typedarray_type t;
    void *data;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, argv[5], &t, &n, &data, &ab, &off) != napi_ok || t != napi_int32_array || !n)
      return throw_msg(env, "lengths must be a non-empty Int32Array"), NULL;
    lengths = data;
  }
  napi_typedarray_type t;
  size_t count, off;
  void *pos_host;
  napi_value ab;
  if (napi_get_typedarray_info(env, argv[3], &t, &count, &pos_host, &ab, &off) != napi_ok ||
      t != napi_bigint64_array || count == 0 || count % (3 * n) != 0)
    return throw_msg(env, "positions must be a BigInt64Array of 3 * rows * S values"), NULL;
  int S = (int)(count / (3 * n));
  if (lengths == NULL) {
    one_length = S;
    lengths = &one_length;
  }
  if (row < 0 || row + (int)n > d->batch) return throw_msg(env, "row out of range"), NULL;
  if (past < 0 || past + S > d->capacity) return throw_msg(env, "sequence exceeds the KV capacity"), NULL;
  for (size_t b = 0; b < n; b++) {
    if (lengths[b] < 1 || lengths[b] > S) return throw_msg(env, "each length must be in 1 .. S"), NULL;
    if (lengths[b] < S && past > 0) return throw_msg(env, "padded rows need pastLength 0"), NULL;
  }
  const int32_t *full = NULL;
  size_t n_full = n;
  if (argc > 6 && !index_list(env, argv[6], n, &full, &n_full, "full")) return NULL;
  size_t emb_bytes = n * S * d->hidden * d->elem, pos_bytes = count * 8, row_bytes = d->hidden * d->elem;
  const void *emb_host = typed_bytes(env, argv[2], emb_bytes, "embeds");
  if (emb_host == NULL) return NULL;
  int32_t *seqlens = malloc(n * 4);
  int64_t *last = malloc(n * 8);
  if (seqlens == NULL || last == NULL) {
    free(seqlens);
    free(last);
    return throw_msg(env, "out of host memory"), NULL;
  }
  for (size_t b = 0; b < n; b++) {
    seqlens[b] = past + lengths[b] - 1;
    last[b] = lengths[b] - 1;
  }
  napi_value out = NULL;
  OrtIoBinding *io = NULL;
  OrtValue *vals[9] = {0};
  OrtValue **kv = calloc(2 * d->layers, sizeof(OrtValue *));
  void *emb, *pos, *sl, *li, *lg, *hd, *tv = NULL, *ti = NULL;
  size_t K = d->top_k;
  float *top_values = NULL;
  int64_t *top_ids = NULL;
  int32_t total = past + S;
  int64_t emb_shape[3] = {(int64_t)n, S, d->hidden}, pos_shape[3] = {3, (int64_t)n, S}, rows_shape[1] = {(int64_t)n};
  int64_t logit_shape[2] = {(int64_t)n, d->vocab}, hid_shape[2] = {(int64_t)n, d->hidden};
  int64_t top_shape[2] = {(int64_t)n, (int64_t)K};
  d->forward_rows = 0;
  CHECK(kv && (emb = scratch(env, d, 0, emb_bytes)) && (pos = scratch(env, d, 1, pos_bytes)) &&
        (sl = scratch(env, d, 2, n * 4)) && (li = scratch(env, d, 3, n * 8)) &&
        (lg = scratch(env, d, 4, n * d->vocab * 4)) && (hd = scratch(env, d, 5, n * row_bytes)));
  CHECK(copy(env, d, emb, emb_host, emb_bytes, H2D) && copy(env, d, pos, pos_host, pos_bytes, H2D) &&
        copy(env, d, sl, seqlens, n * 4, H2D) && copy(env, d, li, last, n * 8, H2D));
  CHECK((vals[0] = tensor(env, d, d->mem, emb, emb_bytes, emb_shape, 3, act_type(d))) &&
        (vals[1] = tensor(env, d, d->mem, pos, pos_bytes, pos_shape, 3, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64)) &&
        (vals[2] = tensor(env, d, d->mem, sl, n * 4, rows_shape, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32)) &&
        (vals[3] = tensor(env, d, d->cpu_mem, &total, 4, NULL, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32)) &&
        (vals[4] = tensor(env, d, d->mem, lg, n * d->vocab * 4, logit_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)) &&
        (vals[5] = tensor(env, d, d->mem, hd, n * row_bytes, hid_shape, 2, act_type(d))) &&
        (vals[6] = tensor(env, d, d->mem, li, n * 8, rows_shape, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64)));
  ORT_TRY(env, ort->CreateIoBinding(d->session, &io), "CreateIoBinding");
  ORT_TRY(env, ort->BindInput(io, "inputs_embeds", vals[0]), "bind inputs_embeds");
  ORT_TRY(env, ort->BindInput(io, "position_ids", vals[1]), "bind position_ids");
  ORT_TRY(env, ort->BindInput(io, "seqlens_k", vals[2]), "bind seqlens_k");
  ORT_TRY(env, ort->BindInput(io, "total_sequence_length", vals[3]), "bind total_sequence_length");
  ORT_TRY(env, ort->BindInput(io, "last_index", vals[6]), "bind last_index");
  ORT_TRY(env, ort->BindOutput(io, "logits", vals[4]), "bind logits");
  ORT_TRY(env, ort->BindOutput(io, "last_hidden_state", vals[5]), "bind last_hidden_state");
  if (K) {
    CHECK((tv = scratch(env, d, 6, n * K * 4)) && (ti = scratch(env, d, 7, n * K * 8)));
    CHECK((vals[7] = tensor(env, d, d->mem, tv, n * K * 4, top_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)) &&
          (vals[8] = tensor(env, d, d->mem, ti, n * K * 8, top_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64)));
    ORT_TRY(env, ort->BindOutput(io, "top_logits", vals[7]), "bind top_logits");
    ORT_TRY(env, ort->BindOutput(io, "top_ids", vals[8]), "bind top_ids");
  }
  CHECK(bind_kv(env, d, io, row, (int)n, kv));
  ORT_TRY(env, ort->RunWithBinding(d->session, d->forward_run, io), "run");
  d->forward_rows = n;
  // The rows' hidden states are where a following latent step reads them.
  CHECK(copy(env, d, (char *)d->hidden_out + (size_t)row * row_bytes, hd, n * row_bytes, D2D));
  if (K) {
    CHECK((top_values = malloc(n * K * 4)) && (top_ids = malloc(n * K * 8)));
    CHECK(copy(env, d, top_values, tv, n * K * 4, D2H) && copy(env, d, top_ids, ti, n * K * 8, D2H));
  }
  napi_value res;
  CHECK((res = result(env, d, lg, hd, full, n_full, n)) != NULL);
  if (K) set_top(env, d, res, top_values, top_ids, n);
  out = res;
fail:
  if (io) ort->ReleaseIoBinding(io);
  for (int i = 0; i < 9; i++)
    if (vals[i]) ort->ReleaseValue(vals[i]);
  free(top_values);
  free(top_ids);
  for (int i = 0; kv && i < 2 * d->layers; i++)
    if (kv[i]) ort->ReleaseValue(kv[i]);
  free(kv);
  free(seqlens);
  free(last);
  return out;
}

// -- steps ---------------------------------------------------------------------------------------------------------
static void free_job(StepJob *j) {
  if (j == NULL) return;
  void *bufs[] = {j->embeds, j->latent, j->positions, j->seqlens, j->rows, j->full,
                  j->tokens, j->fed, j->logits, j->hidden, j->top_values, j->top_ids};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
  free(j);
}

static void *dup_bytes(const void *src, size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (p && bytes) memcpy(p, src, bytes);
  return p;
}

static int job_fail(StepJob *j, const char *what, OrtStatus *st, int cuda_rc) {
  if (st) {
    snprintf(j->error, sizeof j->error, "%s: %s", what, ort->GetErrorMessage(st));
    ort->ReleaseStatus(st);
  } else {
    snprintf(j->error, sizeof j->error, "%s: CUDA error %d", what, cuda_rc);
  }
  j->failed = 1;
  return 0;
}

// `step`'s tokens[b]: slot b takes the token its pick rule chooses from its previous top K (the addon embeds it).
#define FEED_PICK (-2)
// `step`'s tokens[b]: slot b's input is latent, and the token its pick rule chooses from its previous top K (the
// sequence's latent placeholder, picked but not fed) only joins its seen tokens.
#define PICK_UNFED (-3)
#define PICKED_HERE(t) ((t) == FEED_PICK || (t) == PICK_UNFED)

static int seen_has(Decoder *d, size_t b, int64_t id) {
  return d->seen && (d->seen[b * d->seen_bytes + id / 8] >> (id % 8)) & 1;
}

static void seen_add(Decoder *d, size_t b, int64_t id) {
  if (d->seen && d->penalty[b] != 1.0f && id >= 0 && id < d->vocab)
    d->seen[b * d->seen_bytes + id / 8] |= (uint8_t)(1u << (id % 8));
}

// The greedy pick of slot b from its previous top K under its repetition penalty (a seen token's logit ÷p, or ×p when
// negative; ties to the lower id), as the engine's greedyFromTop; -1 when the K candidates do not decide it (the pick
// is not above the K-th logit, so a token outside them could win).
static int64_t pick_from_top(Decoder *d, size_t b) {
  size_t K = d->top_k;
  const float *values = d->prev_values + b * K;
  const int64_t *ids = d->prev_ids + b * K;
  float p = d->penalty[b];
  if (p == 1.0f) return ids[0];
  int64_t best = -1;
  float best_value = -INFINITY;
  for (size_t i = 0; i < K; i++) {
    float v = values[i];
    if (seen_has(d, b, ids[i])) v = v < 0 ? v * p : v / p;
    if (v > best_value || (v == best_value && ids[i] < best)) {
      best = ids[i];
      best_value = v;
    }
  }
  return best_value > values[K - 1] ? best : -1;
}

// Picks for each FEED_PICK and PICK_UNFED slot (j->fed records them) and embeds the FEED_PICK ones into the job's
// input rows, then adds every slot's token (input or placeholder) to its seen tokens.
static int feed_picks(Decoder *d, StepJob *j, size_t S, size_t row_bytes) {
  for (size_t b = 0; b < S; b++) {
    j->fed[b] = -1;
    if (!PICKED_HERE(j->tokens[b])) continue;
    int64_t id = d->prev_valid[b] ? pick_from_top(d, b) : -1;
    if (id < 0 || id >= d->vocab) {
      snprintf(j->error, sizeof j->error,
               d->prev_valid[b] ? "tokens: slot %zu's top candidates do not decide its pick"
                                : "tokens: slot %zu has no top candidates from the step before (it failed or did not "
                                  "return that slot)",
               b);
      j->failed = 1;
      return 0;
    }
    j->fed[b] = (int32_t)id;
    if (j->tokens[b] == FEED_PICK)
      memcpy((char *)j->embeds + b * row_bytes, d->embed_table + (size_t)id * row_bytes, row_bytes);
  }
  for (size_t b = 0; b < S; b++) seen_add(d, b, PICKED_HERE(j->tokens[b]) ? j->fed[b] : j->tokens[b]);
  return 1;
}

// After a step: the top K of each slot it returned, for a following step's FEED_PICK slots.
static void keep_top(Decoder *d, StepJob *j) {
  size_t K = d->top_k;
  for (size_t k = 0; K && k < j->n; k++) {
    size_t b = j->rows ? (size_t)j->rows[k] : k;
    memcpy(d->prev_values + b * K, j->top_values + k * K * 4, K * 4);
    memcpy(d->prev_ids + b * K, j->top_ids + k * K * 8, K * 8);
    d->prev_valid[b] = 1;
  }
}

// Runs a step on the calling thread (no N-API): inputs to the device, the bound run, requested rows to the host.
static int run_job(Decoder *d, StepJob *j) {
  size_t S = d->sizes[j->size], row_bytes = d->hidden * d->elem, K = d->top_k;
  int rc;
  if (j->tokens && !feed_picks(d, j, S, row_bytes)) return forget_top(d), 0;
  j->ran = 1;
  forget_top(d);
  if (j->async && d->step_rows &&
      (rc = copy_raw(d, d->kept_logits, d->logits, d->step_rows * d->vocab * 4, D2D)))
    return job_fail(j, "keep logits", 0, rc);
  d->step_rows = S;
  if (j->embeds && (rc = copy_raw(d, d->embeds, j->embeds, S * row_bytes, H2D))) return job_fail(j, "embeds", 0, rc);
  for (size_t b = 0; j->latent && b < S; b++)
    if (j->latent[b] && (rc = copy_raw(d, (char *)d->embeds + b * row_bytes, (char *)d->hidden_out + b * row_bytes,
                                       row_bytes, D2D)))
      return job_fail(j, "latent rows", 0, rc);
  if ((rc = copy_raw(d, d->positions, j->positions, 3 * S * 8, H2D)) ||
      (rc = copy_raw(d, d->seqlens, j->seqlens, S * 4, H2D)))
    return job_fail(j, "positions", 0, rc);
  d->total = j->total;
  OrtStatus *st = ort->RunWithBinding(step_session(d, j->size), d->step_run[j->size], d->step_io[j->size]);
  if (st) return job_fail(j, "run", st, 0);
  if ((rc = gather_raw(d, j->logits, d->logits, (size_t)d->vocab * 4, j->full, j->n_full)) ||
      (rc = gather_raw(d, j->hidden, d->hidden_out, row_bytes, j->rows, j->n)))
    return job_fail(j, "outputs", 0, rc);
  if (K && ((rc = gather_raw(d, j->top_values, d->top_values, K * 4, j->rows, j->n)) ||
            (rc = gather_raw(d, j->top_ids, d->top_ids, K * 8, j->rows, j->n))))
    return job_fail(j, "top outputs", 0, rc);
  keep_top(d, j);
  return 1;
}

static void step_thread(void *arg) {
  Decoder *d = arg;
  if (d->on_gpu) cuda.set_device(d->device);
  uv_mutex_lock(&d->mu);
  for (;;) {
    while (d->queue_head == NULL && !d->quit) uv_cond_wait(&d->cv, &d->mu);
    if (d->quit) break;
    StepJob *j = d->queue_head;
    d->queue_head = j->next;
    if (d->queue_head == NULL) d->queue_tail = NULL;
    uv_mutex_unlock(&d->mu);
    run_job(d, j);
    // An async job belongs to the JS thread once handed over (step_done frees it): never touch it after that.
    if (j->async) {
      napi_call_threadsafe_function(d->tsfn, j, napi_tsfn_blocking);
      uv_mutex_lock(&d->mu);
      continue;
    }
    uv_mutex_lock(&d->mu);
    j->done = 1;
    uv_cond_broadcast(&d->cv);
  }
  uv_mutex_unlock(&d->mu);
}

static void submit(Decoder *d, StepJob *j) {
  uv_mutex_lock(&d->mu);
  if (d->queue_tail) d->queue_tail->next = j;
  else d->queue_head = j;
  d->queue_tail = j;
  uv_cond_broadcast(&d->cv);
  if (!j->async)
    while (!j->done) uv_cond_wait(&d->cv, &d->mu);
  uv_mutex_unlock(&d->mu);
}

static void stop_thread(Decoder *d) {
  if (!d->thread_started) return;
  uv_mutex_lock(&d->mu);
  d->quit = 1;
  uv_cond_broadcast(&d->cv);
  uv_mutex_unlock(&d->mu);
  uv_thread_join(&d->thread);
  d->thread_started = 0;
}

// {logits [nFull*V], hidden [n*H], topLogits?, topIds? [n*K]} from a finished job.
static napi_value job_result(napi_env env, Decoder *d, StepJob *j) {
  size_t n = j->n;
  char *l, *h;
  napi_value out, logits = new_float32(env, j->n_full * d->vocab, (void **)&l),
                  hidden = new_activations(env, d, n * d->hidden, (void **)&h);
  memcpy(l, j->logits, j->n_full * d->vocab * 4);
  memcpy(h, j->hidden, n * d->hidden * d->elem);
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "logits", logits);
  napi_set_named_property(env, out, "hidden", hidden);
  if (d->top_k) set_top(env, d, out, (const float *)j->top_values, (const int64_t *)j->top_ids, n);
  if (j->fed) {
    char *fed;
    napi_value ab, ids;
    napi_create_arraybuffer(env, n * 4, (void **)&fed, &ab);
    napi_create_typedarray(env, napi_int32_array, n, ab, 0, &ids);
    for (size_t k = 0; k < n; k++) ((int32_t *)fed)[k] = j->fed[j->rows ? (size_t)j->rows[k] : k];
    napi_set_named_property(env, out, "fedIds", ids);
  }
  return out;
}

static void step_done(napi_env env, napi_value js_cb, void *context, void *data) {
  Decoder *d = context;
  StepJob *j = data;
  d->busy--;
  if (env != NULL) {
    if (d->busy == 0) napi_unref_threadsafe_function(env, d->tsfn);
    if (j->failed) {
      napi_value msg, code, err;
      napi_create_string_utf8(env, j->error, NAPI_AUTO_LENGTH, &msg);
      // LVR_NATIVE_NOT_RUN: the step stopped at its picks, before it changed anything.
      napi_create_string_utf8(env, j->ran ? "LVR_NATIVE" : "LVR_NATIVE_NOT_RUN", NAPI_AUTO_LENGTH, &code);
      napi_create_error(env, code, msg, &err);
      napi_reject_deferred(env, j->deferred, err);
    } else {
      napi_resolve_deferred(env, j->deferred, job_result(env, d, j));
    }
  }
  free_job(j);
}

// The larger of `end` and one past the highest of rows[0..n-1] (none when rows is NULL).
static size_t rows_end(const int32_t *rows, size_t n, size_t end) {
  for (size_t k = 0; rows && k < n; k++)
    if ((size_t)rows[k] + 1 > end) end = (size_t)rows[k] + 1;
  return end;
}

// Reads step's arguments (argv[1..7]) into a new job, or NULL after throwing.
static StepJob *step_job(napi_env env, Decoder *d, size_t argc, napi_value *argv) {
  size_t B = d->batch, row_bytes = d->hidden * d->elem, K = d->top_k;
  napi_valuetype t0, t1;
  napi_typeof(env, argv[1], &t0);
  napi_typeof(env, argv[2], &t1);
  const int64_t *pos = typed_bytes(env, argv[3], 3 * B * 8, "positions");
  const int32_t *seq = pos ? typed_bytes(env, argv[4], B * 4, "seqlens") : NULL;
  if (seq == NULL) return NULL;
  for (size_t b = 0; b < B; b++)
    if (seq[b] < 0 || seq[b] >= d->capacity) return throw_msg(env, "sequence exceeds the KV capacity"), NULL;
  const int32_t *rows = NULL, *full = NULL;
  size_t n = B, n_full;
  if (argc > 5 && !slot_list(env, d, argv[5], &rows, &n, "outRows")) return NULL;
  full = rows;
  n_full = n;
  if (argc > 6 && !slot_list(env, d, argv[6], &full, &n_full, "fullRows")) return NULL;
  const void *emb = NULL;
  const uint8_t *latent = NULL;
  if (t0 != napi_null && t0 != napi_undefined && (emb = typed_bytes(env, argv[1], B * row_bytes, "embeds")) == NULL)
    return NULL;
  if (t1 != napi_null && t1 != napi_undefined && (latent = typed_bytes(env, argv[2], B, "latentRows")) == NULL)
    return NULL;
  const int32_t *tokens = NULL;
  int feeds = 0;
  napi_valuetype t7 = napi_undefined;
  if (argc > 7) napi_typeof(env, argv[7], &t7);
  if (t7 != napi_null && t7 != napi_undefined) {
    if ((tokens = typed_bytes(env, argv[7], B * 4, "tokens")) == NULL) return NULL;
    for (size_t b = 0; b < B; b++) {
      if (tokens[b] < PICK_UNFED || tokens[b] >= d->vocab)
        return throw_msg(env, "tokens: each must be a token id, -1 (none), -2 (feed the pick from the top K) or -3 "
                              "(pick a latent slot's placeholder)"),
               NULL;
      if (tokens[b] == FEED_PICK && latent && latent[b])
        return throw_msg(env, "tokens: a latent slot cannot be fed a pick"), NULL;
      if (tokens[b] == PICK_UNFED && d->top_k == 0)
        return throw_msg(env, "tokens: a placeholder pick needs the top candidates (topK)"), NULL;
      feeds |= tokens[b] == FEED_PICK;
    }
    if (feeds && (d->top_k == 0 || d->embed_table == NULL))
      return throw_msg(env, "tokens: a pick needs the top candidates (topK) and the embedding table (setEmbeddings)"),
             NULL;
  }
  // The step runs the first S slots: the smallest size that covers every slot it reads or feeds. An empty list's data
  // pointer may be NULL: only a list left out (rows NULL with n = B) means every slot.
  size_t need = rows == NULL && n == B ? B : 0;
  need = rows_end(rows, n, need);
  need = rows_end(full, n_full, need);
  for (size_t b = 0; b < B; b++)
    if (((latent && latent[b]) || (tokens && PICKED_HERE(tokens[b]))) && b + 1 > need) need = b + 1;
  int size = 0;
  while (d->sizes[size] < (int)need) size++;
  size_t S = d->sizes[size];
  int32_t longest = 0;
  for (size_t b = 0; b < S; b++) longest = seq[b] + 1 > longest ? seq[b] + 1 : longest;
  StepJob *j = calloc(1, sizeof(StepJob));
  if (j == NULL) return throw_msg(env, "out of host memory"), NULL;
  j->size = size;
  j->total = longest;
  j->n = n;
  j->n_full = n_full;
  j->embeds = emb ? dup_bytes(emb, S * row_bytes) : feeds ? calloc(S, row_bytes) : NULL;
  j->latent = latent ? dup_bytes(latent, S) : NULL;
  j->tokens = tokens ? dup_bytes(tokens, S * 4) : NULL;
  j->fed = tokens ? malloc(S * 4) : NULL;
  j->positions = malloc(3 * S * 8);
  if (j->positions) // [3, B] -> [3, S]: the first S slots of each M-RoPE axis
    for (size_t a = 0; a < 3; a++) memcpy(j->positions + a * S, pos + a * B, S * 8);
  j->seqlens = dup_bytes(seq, S * 4);
  j->rows = rows ? dup_bytes(rows, n * 4) : NULL;
  j->full = full ? dup_bytes(full, n_full * 4) : NULL;
  j->logits = malloc(n_full * d->vocab * 4 + 1);
  j->hidden = malloc(n * row_bytes + 1);
  j->top_values = malloc(n * K * 4 + 1);
  j->top_ids = malloc(n * K * 8 + 1);
  if (((emb || feeds) && !j->embeds) || (latent && !j->latent) || (tokens && (!j->tokens || !j->fed)) ||
      !j->positions || !j->seqlens || (rows && !j->rows) ||
      (full && !j->full) || !j->logits || !j->hidden || !j->top_values || !j->top_ids) {
    free_job(j);
    return throw_msg(env, "out of host memory"), NULL;
  }
  return j;
}

// step(handle, embeds [B*H] | null, latentRows Uint8Array [B] | null, positions BigInt64Array [3*B],
//      seqlens Int32Array [B], outRows?, fullRows?, tokens? Int32Array [B])
//   -> {logits [nFull*V], hidden [n*H], topLogits?, topIds? [n*K], fedIds? [n]}
// One new position for the first S slots, S the smallest of stepSizes that covers outRows, fullRows, latentRows and
// the fed slots (B when outRows is left out); rows flagged in latentRows take their last hidden state (from the
// previous step or forward) as input, copied on the device. tokens[b]: the token whose embedding embeds row b holds
// (added to the slot's seen tokens; for a latent slot, the placeholder picked at its previous step), -1 for none, -2:
// the slot takes the token its pick rule (setPickRule) chooses from its top K of the step before, embedded here
// (setEmbeddings) when the step starts, or -3: a latent slot's placeholder is that pick (seen, not fed); fedIds says
// which.
// seqlens[b] = tokens in row b's cache after this step - 1. Hidden states (and the top K logits with their ids) of rows
// outRows (in that order; default all) come back to the host, whole logit rows only for rows fullRows (default:
// outRows); lastLogits reads others until the next step.
static napi_value js_step(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[8];
  Decoder *d = decoder_call(env, info, 5, 8, argv, &argc,
                            "step(handle, embeds, latentRows, positions, seqlens, outRows?, fullRows?, tokens?)");
  StepJob *j = d && not_busy(env, d) ? step_job(env, d, argc, argv) : NULL;
  if (j == NULL) return NULL;
  submit(d, j);
  napi_value out = NULL;
  if (j->failed) throw_msg(env, j->error);
  else out = job_result(env, d, j);
  free_job(j);
  return out;
}

// stepAsync(handle, ...step's arguments) -> Promise of step's result: the step runs while the JS thread goes on.
// Further stepAsync calls queue behind it (at most MAX_PENDING_STEPS pending) and run in order, so a step fed picks
// from its predecessor's top candidates (tokens -2) starts as soon as that one ends; no other call until every one
// settles.
static napi_value js_step_async(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[8], promise;
  Decoder *d = decoder_call(env, info, 5, 8, argv, &argc,
                            "stepAsync(handle, embeds, latentRows, positions, seqlens, outRows?, fullRows?, tokens?)");
  if (d && d->busy >= MAX_PENDING_STEPS) return throw_msg(env, "too many stepAsync calls pending"), NULL;
  StepJob *j = d ? step_job(env, d, argc, argv) : NULL;
  if (j == NULL) return NULL;
  if (d->kept_logits == NULL && (d->kept_logits = dev_alloc(env, d, (size_t)d->batch * d->vocab * 4)) == NULL) {
    free_job(j);
    return NULL;
  }
  j->async = 1;
  napi_create_promise(env, &j->deferred, &promise);
  if (d->busy++ == 0) napi_ref_threadsafe_function(env, d->tsfn); // the event loop stays alive until steps are back
  submit(d, j);
  return promise;
}

// lastLogits(handle, rows Int32Array, kept?) -> Float32Array [n*V]: rows of the last step's logits (until the next
// step); kept = true: of the step before the last stepAsync.
static napi_value js_last_logits(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[3];
  Decoder *d = decoder_call(env, info, 2, 3, argv, &argc, "lastLogits(handle, rows, kept?)");
  const int32_t *rows = NULL;
  size_t n = 0;
  bool kept = false;
  if (d == NULL || !not_busy(env, d) || !slot_list(env, d, argv[1], &rows, &n, "rows")) return NULL;
  if (rows == NULL) return throw_msg(env, "rows must be an Int32Array"), NULL;
  if (argc > 2) napi_get_value_bool(env, argv[2], &kept);
  if (kept && d->kept_logits == NULL) return throw_msg(env, "no stepAsync ran: nothing kept"), NULL;
  return logits_rows(env, d, kept ? d->kept_logits : d->logits, rows, n);
}

// forwardLogits(handle, rows Int32Array) -> logits [rows.length * V]: rows (0..n-1) of the last forward, also those
// it left out, until the next forward.
static napi_value js_forward_logits(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  Decoder *d = decoder_call(env, info, 2, 2, argv, &argc, "forwardLogits(handle, rows)");
  const int32_t *rows = NULL;
  size_t n = 0;
  if (d == NULL || !not_busy(env, d)) return NULL;
  if (d->forward_rows == 0) return throw_msg(env, "no forward ran: no logits to read"), NULL;
  if (!index_list(env, argv[1], d->forward_rows, &rows, &n, "rows")) return NULL;
  if (rows == NULL) return throw_msg(env, "rows must be an Int32Array"), NULL;
  return logits_rows(env, d, d->scratch[4], rows, n);
}

// setEmbeddings(handle, table Float32Array | Uint16Array [vocab * hidden], in the activation dtype): the token
// embedding that fed picks are looked up in; the decoder keeps a reference to it (not a copy).
static napi_value js_set_embeddings(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  Decoder *d = decoder_call(env, info, 2, 2, argv, &argc, "setEmbeddings(handle, table)");
  if (d == NULL || !not_busy(env, d)) return NULL;
  const char *table = typed_bytes(env, argv[1], (size_t)d->vocab * d->hidden * d->elem, "embedding table");
  if (table == NULL) return NULL;
  napi_ref ref;
  if (napi_create_reference(env, argv[1], 1, &ref) != napi_ok)
    return throw_msg(env, "napi_create_reference failed"), NULL;
  if (d->embed_ref) napi_delete_reference(env, d->embed_ref);
  d->embed_ref = ref;
  d->embed_table = table;
  return NULL;
}

// setPickRule(handle, slot, repetitionPenalty, seen Int32Array): the rule by which slot's fed picks are made (a
// penalty of 1: the first top candidate) and, with a penalty, the tokens it has seen so far; each token step adds
// its input.
static napi_value js_set_pick_rule(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[4];
  Decoder *d = decoder_call(env, info, 4, 4, argv, &argc, "setPickRule(handle, slot, repetitionPenalty, seen)");
  int32_t slot;
  double penalty;
  if (d == NULL || !not_busy(env, d)) return NULL;
  if (napi_get_value_int32(env, argv[1], &slot) != napi_ok || slot < 0 || slot >= d->batch)
    return throw_msg(env, "slot out of range"), NULL;
  if (napi_get_value_double(env, argv[2], &penalty) != napi_ok || !(penalty >= 1))
    return throw_msg(env, "repetitionPenalty must be a number of at least 1"), NULL;
  const int32_t *ids = NULL;
  size_t n = 0;
  bool is_array = false;
  napi_is_typedarray(env, argv[3], &is_array);
  if (!is_array) return throw_msg(env, "seen must be an Int32Array"), NULL;
  if (!index_list(env, argv[3], (size_t)d->vocab, &ids, &n, "seen")) return NULL;
  d->penalty[slot] = (float)penalty;
  if (d->penalty[slot] == 1.0f) return NULL;
  if (d->seen == NULL && (d->seen = calloc((size_t)d->batch, d->seen_bytes)) == NULL)
    return throw_msg(env, "out of host memory"), NULL;
  memset(d->seen + slot * d->seen_bytes, 0, d->seen_bytes);
  for (size_t i = 0; i < n; i++) seen_add(d, slot, ids[i]);
  return NULL;
}

// sessions(handle) -> the ONNX Runtime sessions the decoder runs: 2 with a large-step session (mixedGemmFrom), else 1.
static napi_value js_sessions(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  size_t argc;
  Decoder *d = decoder_call(env, info, 1, 1, argv, &argc, "sessions(handle)");
  if (d == NULL) return NULL;
  napi_create_int32(env, d->large_session ? 2 : 1, &out);
  return out;
}

// libraryLoads(name) -> whether dlopen finds and loads the shared library `name` (closed again right after).
static napi_value js_library_loads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, out;
  char name[4096];
  napi_get_cb_info(env, info, &argc, &arg, NULL, NULL);
  if (argc != 1 || !get_string(env, arg, name, sizeof name)) return NULL;
  void *lib = dlopen(name, RTLD_LAZY | RTLD_LOCAL);
  if (lib) dlclose(lib);
  napi_get_boolean(env, lib != NULL, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"init", NULL, js_init, NULL, NULL, NULL, napi_default, NULL},
      {"createDecoder", NULL, js_create_decoder, NULL, NULL, NULL, napi_default, NULL},
      {"forward", NULL, js_forward, NULL, NULL, NULL, napi_default, NULL},
      {"step", NULL, js_step, NULL, NULL, NULL, napi_default, NULL},
      {"stepAsync", NULL, js_step_async, NULL, NULL, NULL, napi_default, NULL},
      {"lastLogits", NULL, js_last_logits, NULL, NULL, NULL, napi_default, NULL},
      {"forwardLogits", NULL, js_forward_logits, NULL, NULL, NULL, napi_default, NULL},
      {"libraryLoads", NULL, js_library_loads, NULL, NULL, NULL, napi_default, NULL},
      {"sessions", NULL, js_sessions, NULL, NULL, NULL, napi_default, NULL},
      {"setEmbeddings", NULL, js_set_embeddings, NULL, NULL, NULL, napi_default, NULL},
      {"setPickRule", NULL, js_set_pick_rule, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
