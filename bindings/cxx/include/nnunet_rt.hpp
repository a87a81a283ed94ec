// nnunet_rt.hpp: a header-only C++17 layer over the nnunet-rt C API (nnunet_rt.h).
//
// Every object owns exactly one C handle and frees it in its destructor; objects are move-only.
// A failed call throws nnrt::Error, which carries the status code and the library's message.
// It needs nothing but the C header and either Rust library (libnnunet_rt.so or libnnunet_rt.a),
// so it is the C++ route that works with the shared library. The cxx binding
// (namespace nnunet_rt, bindings/cxx) is the alternative for programs linking the static library.
//
// Threads: as in C. A Model may be shared by any number of threads (predictions on one model
// run one at a time); a Result is immutable; LoadOptions must not be modified concurrently.
//
//   nnrt::Model model = nnrt::Model::load("MODEL_DIR");
//   nnrt::Result result = model.predict(nnrt::Volume::of(voxels.data(), {x, y, z}, {sx, sy, sz}));
//   std::vector<std::uint64_t> counts = result.label_counts();

#ifndef NNUNET_RT_HPP
#define NNUNET_RT_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "nnunet_rt.h"

namespace nnrt {

/// A failed call: the status code (NNRT_*) and the library's one-line message.
class Error : public std::runtime_error {
 public:
  Error(nnrt_status status, const std::string &message)
      : std::runtime_error(std::string(nnrt_status_str(status)) + ": " + message), status_(status) {}

  /// One of the NNRT_* status codes.
  nnrt_status status() const noexcept { return status_; }

 private:
  nnrt_status status_;
};

namespace detail {

/// Throws nnrt::Error for a failed status, with this thread's last error message.
inline void check(nnrt_status status) {
  if (status != NNRT_OK) throw Error(status, nnrt_last_error_message());
}

template <typename T, void (*Free)(T *)>
struct Deleter {
  void operator()(T *handle) const noexcept { Free(handle); }
};

template <typename T, void (*Free)(T *)>
using Handle = std::unique_ptr<T, Deleter<T, Free>>;

template <typename T>
struct DtypeOf;
template <>
struct DtypeOf<std::uint8_t> { static constexpr std::uint32_t value = NNRT_DTYPE_U8; };
template <>
struct DtypeOf<std::int8_t> { static constexpr std::uint32_t value = NNRT_DTYPE_I8; };
template <>
struct DtypeOf<std::uint16_t> { static constexpr std::uint32_t value = NNRT_DTYPE_U16; };
template <>
struct DtypeOf<std::int16_t> { static constexpr std::uint32_t value = NNRT_DTYPE_I16; };
template <>
struct DtypeOf<std::uint32_t> { static constexpr std::uint32_t value = NNRT_DTYPE_U32; };
template <>
struct DtypeOf<std::int32_t> { static constexpr std::uint32_t value = NNRT_DTYPE_I32; };
template <>
struct DtypeOf<float> { static constexpr std::uint32_t value = NNRT_DTYPE_F32; };
template <>
struct DtypeOf<double> { static constexpr std::uint32_t value = NNRT_DTYPE_F64; };

}  // namespace detail

/// "nnunet-rt/<version> ..." of the loaded library.
inline std::string version() { return nnrt_version(); }

/// A borrowed volume description (x fastest, channels one after the other). The voxels are
/// only read during Model::predict and must outlive that call.
struct Volume {
  nnrt_volume raw = blank();

  /// An empty description of this header's size; fill its fields (byte_strides all 0: packed).
  static nnrt_volume blank() {
    nnrt_volume v{};
    v.struct_size = sizeof v;
    return v;
  }

  /// Describes `channels` blocks of `dims[0] * dims[1] * dims[2]` voxels of type T, with the
  /// given spacing (mm), zero origin and identity direction unless set afterwards.
  template <typename T>
  static Volume of(const T *data, std::array<std::size_t, 3> dims, std::array<double, 3> spacing,
                   std::size_t channels = 1) {
    Volume v;
    v.raw.data = data;
    v.raw.dtype = detail::DtypeOf<T>::value;
    v.raw.channels = channels;
    for (int i = 0; i < 3; ++i) {
      v.raw.dims[i] = dims[i];
      v.raw.spacing[i] = spacing[i];
      v.raw.origin[i] = 0.0;
    }
    for (int i = 0; i < 9; ++i) v.raw.direction[i] = (i % 4 == 0) ? 1.0 : 0.0;
    return v;
  }

  /// Sets the world position of the first voxel (mm) and the row-major 3x3 direction.
  Volume &with_geometry(const std::array<double, 3> &origin, const std::array<double, 9> &direction) {
    for (int i = 0; i < 3; ++i) raw.origin[i] = origin[i];
    for (int i = 0; i < 9; ++i) raw.direction[i] = direction[i];
    return *this;
  }
};

/// How a model is loaded (owns an nnrt_options). Defaults: every fold, device auto (OpenVINO on
/// the CPU when its plugin loads, else ONNX Runtime's CPU provider), float32 network, libraries
/// searched.
class LoadOptions {
 public:
  LoadOptions() {
    nnrt_options *raw = nullptr;
    detail::check(nnrt_options_new(&raw));
    handle_.reset(raw);
  }

  /// Fold names ("0", "all"...), in the order their outputs are averaged; empty: every fold.
  LoadOptions &folds(const std::vector<std::string> &names) {
    std::vector<const char *> pointers;
    pointers.reserve(names.size());
    for (const std::string &name : names) pointers.push_back(name.c_str());
    detail::check(nnrt_options_set_folds(handle_.get(), pointers.data(), pointers.size()));
    return *this;
  }

  /// Threads of the network (ONNX Runtime intra-op or OpenVINO inference threads); 0: one per core.
  LoadOptions &threads(std::uint32_t count) {
    detail::check(nnrt_options_set_threads(handle_.get(), count));
    return *this;
  }

  /// NNRT_DEVICE_AUTO (default), NNRT_DEVICE_CPU, NNRT_DEVICE_OPENVINO, or NNRT_DEVICE_CUDA with
  /// a GPU index.
  LoadOptions &device(std::uint32_t device, std::int32_t device_id = 0) {
    detail::check(nnrt_options_set_device(handle_.get(), device, device_id));
    return *this;
  }

  /// NNRT_NETWORK_PRECISION_F32 (default) or the opt-in NNRT_NETWORK_PRECISION_BF16.
  LoadOptions &network_precision(std::uint32_t precision) {
    detail::check(nnrt_options_set_network_precision(handle_.get(), precision));
    return *this;
  }

  /// On CUDA, allow TF32 tensor-core convolutions.
  LoadOptions &tf32(bool enabled) {
    detail::check(nnrt_options_set_tf32(handle_.get(), enabled ? 1 : 0));
    return *this;
  }

  /// Path of libonnxruntime.so to load (first model of the process only); empty: search.
  LoadOptions &ort_library(const std::string &path) {
    detail::check(nnrt_options_set_ort_library(handle_.get(), path.empty() ? nullptr : path.c_str()));
    return *this;
  }

  /// Path of the OpenVINO plugin (libonnxruntime_providers_openvino_plugin.so); empty: search.
  LoadOptions &openvino_library(const std::string &path) {
    detail::check(nnrt_options_set_openvino_library(handle_.get(), path.empty() ? nullptr : path.c_str()));
    return *this;
  }

  /// OpenVINO: folder where compiled networks are cached; empty: none.
  LoadOptions &openvino_cache_dir(const std::string &path) {
    detail::check(nnrt_options_set_openvino_cache_dir(handle_.get(), path.empty() ? nullptr : path.c_str()));
    return *this;
  }

  /// A postprocessing.json applied instead of the model folder's own; empty: the folder's.
  LoadOptions &postprocessing_file(const std::string &path) {
    detail::check(nnrt_options_set_postprocessing_file(handle_.get(), path.empty() ? nullptr : path.c_str()));
    return *this;
  }

  /// Apply no postprocessing, even when the model folder provides one.
  LoadOptions &skip_postprocessing(bool skip) {
    detail::check(nnrt_options_set_skip_postprocessing(handle_.get(), skip ? 1 : 0));
    return *this;
  }

  /// A cascade's previous-stage model folder; empty: nnU-Net's sibling folder.
  LoadOptions &previous_stage_model(const std::string &path) {
    detail::check(nnrt_options_set_previous_stage_model(handle_.get(), path.empty() ? nullptr : path.c_str()));
    return *this;
  }

  const nnrt_options *get() const noexcept { return handle_.get(); }

 private:
  detail::Handle<nnrt_options, nnrt_options_free> handle_;
};

/// How a volume is predicted. The defaults are nnU-Net's.
struct PredictOptions {
  double step_size = 0.5;
  bool tta = true;
  bool probabilities = false;
  std::uint32_t classification_policy = NNRT_CLASSIFICATION_LESION_VOXELS;
  /// NNRT_PRECISION_HALF (nnU-Net's float16 accumulation) or NNRT_PRECISION_SINGLE.
  std::uint32_t precision = NNRT_PRECISION_HALF;
  /// Refuse (NNRT_OUT_OF_MEMORY) a prediction whose estimated peak memory exceeds this; 0: none.
  std::uint64_t memory_limit = 0;
  /// Opt-in ROI focus: a cheap first pass finds the foreground, the full pass runs only the tiles
  /// near it (not nnU-Net's algorithm; see nnrt_predict_options_set_roi_focus).
  bool roi_focus = false;
};

/// Progress: called with a stage (NNRT_STAGE_*) and the fraction done within it; return false
/// to cancel (Model::predict then throws an Error with status NNRT_CANCELLED). An exception
/// thrown here cancels the prediction and is rethrown by Model::predict.
using Progress = std::function<bool(std::uint32_t stage, double fraction)>;

/// Label map of a Result (borrowed from it): NNRT_DTYPE_U8 or NNRT_DTYPE_U16 values, x fastest.
struct Labels {
  const void *data;
  std::uint32_t dtype;
  std::array<std::size_t, 3> dims;

  std::size_t size() const noexcept { return dims[0] * dims[1] * dims[2]; }
  std::size_t operator[](std::size_t i) const noexcept {
    return dtype == NNRT_DTYPE_U8 ? static_cast<const std::uint8_t *>(data)[i] : static_cast<const std::uint16_t *>(data)[i];
  }
};

/// A prediction (owns an nnrt_result; immutable, safe to read from several threads).
class Result {
 public:
  explicit Result(nnrt_result *raw) : handle_(raw) {}

  Labels labels() const {
    Labels l{};
    detail::check(nnrt_result_labels(handle_.get(), &l.data, &l.dtype, l.dims.data()));
    return l;
  }

  std::size_t num_labels() const {
    std::size_t n = 0;
    detail::check(nnrt_result_num_labels(handle_.get(), &n));
    return n;
  }

  /// Voxels per label value, background included.
  std::vector<std::uint64_t> label_counts() const {
    std::vector<std::uint64_t> counts(num_labels(), 0);
    const Labels l = labels();
    for (std::size_t i = 0, n = l.size(); i < n; ++i) {
      const std::size_t value = l[i];
      if (value < counts.size()) ++counts[value];
    }
    return counts;
  }

  /// Softmax probabilities (num_labels blocks of the input's voxel count); empty unless requested.
  std::pair<const float *, std::size_t> probabilities() const {
    const float *data = nullptr;
    std::size_t count = 0;
    detail::check(nnrt_result_probabilities(handle_.get(), &data, &count));
    return {data, count};
  }

  /// Classes of the classification head; 0 without one.
  std::size_t num_classes() const {
    std::size_t n = 0;
    detail::check(nnrt_result_num_classes(handle_.get(), &n));
    return n;
  }

  std::vector<double> class_probabilities() const {
    const double *data = nullptr;
    std::size_t count = 0;
    detail::check(nnrt_result_class_probabilities(handle_.get(), &data, &count));
    return std::vector<double>(data, data + count);
  }

  std::size_t predicted_class() const {
    std::size_t index = 0;
    detail::check(nnrt_result_predicted_class(handle_.get(), &index));
    return index;
  }

  std::string class_name(std::size_t index) const {
    const char *name = nullptr;
    detail::check(nnrt_result_class_name(handle_.get(), index, &name));
    return name;
  }

  /// Name of label `index` (dataset.json).
  std::string label_name(std::size_t index) const {
    const char *name = nullptr;
    detail::check(nnrt_result_label_name(handle_.get(), index, &name));
    return name;
  }

  /// Writes the labels into `dst` as `dtype` (NNRT_DTYPE_*) at byte strides along x, y, z
  /// (nullptr: packed, x fastest), e.g. straight into an itk::Image's or vtkImageData's buffer.
  void copy_labels(void *dst, std::uint32_t dtype, const std::int64_t *byte_strides = nullptr) const {
    detail::check(nnrt_result_copy_labels(handle_.get(), dst, dtype, byte_strides));
  }

  /// Milliseconds in preprocessing, the network stage and export.
  std::array<double, 3> timings_ms() const {
    std::array<double, 3> t{};
    detail::check(nnrt_result_timings_ms(handle_.get(), t.data()));
    return t;
  }

  const nnrt_result *get() const noexcept { return handle_.get(); }

 private:
  detail::Handle<nnrt_result, nnrt_result_free> handle_;
};

/// A loaded model (owns an nnrt_model).
class Model {
 public:
  static Model load(const std::string &dir, const LoadOptions &options = LoadOptions()) {
    nnrt_model *raw = nullptr;
    detail::check(nnrt_model_load(dir.c_str(), options.get(), &raw));
    return Model(raw);
  }

  /// Loads a model bundle (`nnunet-rt bundle`) from memory; the bytes may be wiped afterwards.
  static Model load_from_memory(const void *bytes, std::size_t size, const LoadOptions &options = LoadOptions()) {
    nnrt_model *raw = nullptr;
    detail::check(nnrt_model_load_from_memory(bytes, size, options.get(), &raw));
    return Model(raw);
  }

  /// Cancels the predictions running on this model (from any thread); they throw an Error with
  /// status NNRT_CANCELLED.
  void cancel() const { detail::check(nnrt_cancel(handle_.get())); }

  /// Estimated peak memory (bytes) of predicting a volume of this size and geometry.
  std::uint64_t estimate_peak_bytes(const Volume &volume) const {
    std::uint64_t bytes = 0;
    detail::check(nnrt_estimate_peak_bytes(handle_.get(), &volume.raw, nullptr, &bytes));
    return bytes;
  }

  std::string channel_name(std::size_t index) const { return name(nnrt_model_channel_name, index); }

  std::size_t num_channels() const { return count(nnrt_model_num_channels); }
  std::size_t num_labels() const { return count(nnrt_model_num_labels); }
  std::size_t num_classes() const { return count(nnrt_model_num_classes); }
  std::size_t num_folds() const { return count(nnrt_model_num_folds); }
  std::string label_name(std::size_t index) const { return name(nnrt_model_label_name, index); }
  std::string class_name(std::size_t index) const { return name(nnrt_model_class_name, index); }
  std::string fold_name(std::size_t index) const { return name(nnrt_model_fold_name, index); }

  /// What the network runs on, as JSON (see nnrt_model_runtime_info).
  std::string runtime_info() const {
    const char *text = nullptr;
    detail::check(nnrt_model_runtime_info(handle_.get(), &text));
    return text;
  }

  /// Target spacing (mm) along x, y, z.
  std::array<double, 3> spacing() const {
    std::array<double, 3> s{};
    detail::check(nnrt_model_spacing(handle_.get(), s.data()));
    return s;
  }

  /// Patch size (voxels) along x, y, z.
  std::array<std::size_t, 3> patch_size() const {
    std::array<std::size_t, 3> s{};
    detail::check(nnrt_model_patch_size(handle_.get(), s.data()));
    return s;
  }

  /// Predicts `volume`; `progress` (optional) runs on this thread after every network pass.
  Result predict(const Volume &volume, const PredictOptions &options = PredictOptions(),
                 const Progress &progress = Progress()) const {
    nnrt_predict_options *raw_options = nullptr;
    detail::check(nnrt_predict_options_new(&raw_options));
    detail::Handle<nnrt_predict_options, nnrt_predict_options_free> owned(raw_options);
    detail::check(nnrt_predict_options_set_step_size(raw_options, options.step_size));
    detail::check(nnrt_predict_options_set_tta(raw_options, options.tta ? 1 : 0));
    detail::check(nnrt_predict_options_set_probabilities(raw_options, options.probabilities ? 1 : 0));
    detail::check(nnrt_predict_options_set_classification_policy(raw_options, options.classification_policy));
    detail::check(nnrt_predict_options_set_precision(raw_options, options.precision));
    detail::check(nnrt_predict_options_set_memory_limit(raw_options, options.memory_limit));
    detail::check(nnrt_predict_options_set_roi_focus(raw_options, options.roi_focus ? 1 : 0));
    Callback callback{&progress, nullptr};
    if (progress) detail::check(nnrt_predict_options_set_progress(raw_options, &Callback::trampoline, &callback));
    nnrt_result *raw = nullptr;
    const nnrt_status status = nnrt_predict(handle_.get(), &volume.raw, raw_options, &raw);
    if (callback.thrown) std::rethrow_exception(callback.thrown);
    detail::check(status);
    return Result(raw);
  }

  const nnrt_model *get() const noexcept { return handle_.get(); }

 private:
  explicit Model(nnrt_model *raw) : handle_(raw) {}

  // Carries the std::function through the C callback; no exception crosses into the library.
  struct Callback {
    const Progress *progress;
    std::exception_ptr thrown;

    static std::int32_t trampoline(std::uint32_t stage, double fraction, void *user_data) {
      Callback *self = static_cast<Callback *>(user_data);
      try {
        return (*self->progress)(stage, fraction) ? 0 : 1;
      } catch (...) {
        self->thrown = std::current_exception();
        return 1;
      }
    }
  };

  std::size_t count(nnrt_status (*get)(const nnrt_model *, std::size_t *)) const {
    std::size_t n = 0;
    detail::check(get(handle_.get(), &n));
    return n;
  }

  std::string name(nnrt_status (*get)(const nnrt_model *, std::size_t, const char **), std::size_t index) const {
    const char *text = nullptr;
    detail::check(get(handle_.get(), index, &text));
    return text;
  }

  detail::Handle<nnrt_model, nnrt_model_free> handle_;
};

}  // namespace nnrt

#endif  // NNUNET_RT_HPP
