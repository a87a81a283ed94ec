// The cxx binding from C++: introspection, typed predictions, probabilities and classes,
// errors as rust::Error with their status names, cancellation (by return value and by a
// thrown exception), a model shared by threads. Driven by tests/cxx_binding.rs.
//
//   binding HEAD_MODEL_DIR PLAIN_MODEL_DIR
//
// Both models take one CT channel at (0.75, 0.75, 2.0) mm with a patch of 48 x 32 x 16 and a
// fold "0"; the first has a 3-class classification head, the second none.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nnunet_rt_cxx/src/lib.rs.h"

namespace {

int checks = 0;
int failures = 0;

#define EXPECT(cond)                                                         \
  do {                                                                       \
    ++checks;                                                                \
    if (!(cond)) {                                                           \
      ++failures;                                                            \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

// The status name of what `f` throws ("none" when it returns).
template <typename F>
std::string status_of(F f, std::string *what = nullptr) {
  try {
    f();
  } catch (const rust::Error &e) {
    if (what != nullptr) *what = e.what();
    return nnunet_rt::status_name(e);
  }
  return "none";
}

constexpr std::size_t NX = 72, NY = 32, NZ = 16, N = NX * NY * NZ;
constexpr std::array<std::size_t, 3> DIMS{NX, NY, NZ};

std::vector<std::int16_t> ct_volume() {
  std::vector<std::int16_t> v(N);
  for (std::size_t z = 0; z < NZ; ++z) {
    for (std::size_t y = 0; y < NY; ++y) {
      for (std::size_t x = 0; x < NX; ++x) {
        const double dx = (double(x) - 36.0) / 20.0, dy = (double(y) - 16.0) / 10.0, dz = (double(z) - 8.0) / 5.0;
        const double r = dx * dx + dy * dy + dz * dz;
        v[(z * NY + y) * NX + x] = std::int16_t(r < 0.15 ? 120 : r < 1.0 ? 45 : -80 + int((x * 7 + y * 3 + z) % 11));
      }
    }
  }
  return v;
}

template <typename T>
rust::Slice<const T> slice(const std::vector<T> &v) {
  return rust::Slice<const T>(v.data(), v.size());
}

bool same_labels(const nnunet_rt::Prediction &a, const nnunet_rt::Prediction &b) {
  return a.labels_u8.size() == b.labels_u8.size() && a.labels_u16.size() == b.labels_u16.size() &&
         std::equal(a.labels_u8.begin(), a.labels_u8.end(), b.labels_u8.begin()) &&
         std::equal(a.labels_u16.begin(), a.labels_u16.end(), b.labels_u16.begin());
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s HEAD_MODEL_DIR PLAIN_MODEL_DIR HEAD_BUNDLE\n", argv[0]);
    return 2;
  }
  nnunet_rt::LoadOptions load = nnunet_rt::default_load_options();
  load.folds.push_back(rust::String("0"));
  load.threads = 1;
  const rust::Box<nnunet_rt::Model> model = nnunet_rt::Model::load(argv[1], load);
  const rust::Box<nnunet_rt::Model> plain = nnunet_rt::Model::load(argv[2], load);

  // Introspection.
  EXPECT(model->num_channels() == 1);
  EXPECT(model->label_names().size() == 3 && std::string(model->label_names()[0]) == "background");
  EXPECT(model->class_names().size() == 3 && plain->class_names().empty());
  EXPECT(model->fold_names().size() == 1 && std::string(model->fold_names()[0]) == "0");
  EXPECT((model->spacing() == std::array<double, 3>{0.75, 0.75, 2.0}));
  EXPECT((model->patch_size() == std::array<std::size_t, 3>{48, 32, 16}));
  EXPECT(std::string(nnunet_rt::version()).rfind("nnunet-rt/", 0) == 0);

  // A prediction, and the same voxels as other element types.
  const std::vector<std::int16_t> ct = ct_volume();
  const nnunet_rt::Geometry geometry = nnunet_rt::geometry_with_spacing({0.75, 0.75, 2.0});
  nnunet_rt::PredictOptions options = nnunet_rt::default_predict_options();
  EXPECT(options.tta && options.step_size == 0.5 && !options.probabilities);
  options.tta = false;
  nnunet_rt::NoProgress quiet;
  const nnunet_rt::Prediction p = model->predict(slice(ct), DIMS, 1, geometry, options, quiet);
  EXPECT((p.dims == DIMS) && p.label_names.size() == 3);
  EXPECT(p.labels_u16.empty() && p.labels_u8.size() == N);
  EXPECT(std::any_of(p.labels_u8.begin(), p.labels_u8.end(), [](std::uint8_t l) { return l != 0; }));
  EXPECT(p.probabilities.empty());
  EXPECT(p.class_names.size() == 3 && p.class_probabilities.size() == 3 && p.predicted_class < 3);
  if (p.class_probabilities.size() == 3) {
    EXPECT(std::fabs(p.class_probabilities[0] + p.class_probabilities[1] + p.class_probabilities[2] - 1.0) < 1e-9);
    EXPECT(*std::max_element(p.class_probabilities.begin(), p.class_probabilities.end()) == p.class_probabilities[p.predicted_class]);
  }
  EXPECT(p.folds.size() == 1 && p.tiles_per_fold == 2 && p.passes_per_tile == 1);
  EXPECT(p.timings.network_ms > 0.0 && p.timings.preprocess_ms >= 0.0 && p.timings.export_ms >= 0.0);
  const std::vector<float> as_float(ct.begin(), ct.end());
  const std::vector<double> as_double(ct.begin(), ct.end());
  const std::vector<std::int32_t> as_int32(ct.begin(), ct.end());
  EXPECT(same_labels(p, model->predict(slice(as_float), DIMS, 1, geometry, options, quiet)));
  EXPECT(same_labels(p, model->predict(slice(as_double), DIMS, 1, geometry, options, quiet)));
  EXPECT(same_labels(p, model->predict(slice(as_int32), DIMS, 1, geometry, options, quiet)));

  // Probabilities on request; no classes without a head.
  nnunet_rt::PredictOptions with_probabilities = options;
  with_probabilities.probabilities = true;
  const nnunet_rt::Prediction q = plain->predict(slice(ct), DIMS, 1, geometry, with_probabilities, quiet);
  EXPECT(q.probabilities.size() == 3 * N);
  EXPECT(q.class_names.empty() && q.class_probabilities.empty() && q.predicted_class == 0);

  // Errors carry their status.
  std::string what;
  EXPECT(status_of([&] { nnunet_rt::Model::load("/nonexistent/model", load); }, &what) == "NNRT_IO");
  EXPECT(what.find("/nonexistent/model") != std::string::npos);
  nnunet_rt::LoadOptions bad_load = load;
  bad_load.device = "gpu";
  EXPECT(status_of([&] { nnunet_rt::Model::load(argv[1], bad_load); }) == "NNRT_INVALID_ARGUMENT");
  bad_load = load;
  bad_load.folds[0] = rust::String("7");
  EXPECT(status_of([&] { nnunet_rt::Model::load(argv[1], bad_load); }) == "NNRT_INVALID_ARGUMENT");
  EXPECT(status_of([&] { model->predict(slice(ct), {0, NY, NZ}, 1, geometry, options, quiet); }) == "NNRT_INVALID_IMAGE");
  EXPECT(status_of([&] { model->predict(slice(ct), {NX, NY, NZ + 1}, 1, geometry, options, quiet); }) == "NNRT_INVALID_IMAGE");
  EXPECT(status_of([&] { model->predict(slice(ct), {NX, NY, NZ / 2}, 2, geometry, options, quiet); }) == "NNRT_SHAPE_MISMATCH");
  nnunet_rt::Geometry bad_geometry = geometry;
  bad_geometry.spacing[1] = std::numeric_limits<double>::quiet_NaN();
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, bad_geometry, options, quiet); }) == "NNRT_INVALID_IMAGE");
  bad_geometry = geometry;
  bad_geometry.direction[1] = 1.0;
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, bad_geometry, options, quiet); }) == "NNRT_INVALID_IMAGE");
  std::vector<float> with_nan = as_float;
  with_nan[123] = std::numeric_limits<float>::quiet_NaN();
  EXPECT(status_of([&] { model->predict(slice(with_nan), DIMS, 1, geometry, options, quiet); }) == "NNRT_INVALID_IMAGE");
  nnunet_rt::PredictOptions bad_options = options;
  bad_options.step_size = 0.0;
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, geometry, bad_options, quiet); }) == "NNRT_INVALID_ARGUMENT");
  bad_options = options;
  bad_options.classification_policy = "max";
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, geometry, bad_options, quiet); }) == "NNRT_INVALID_ARGUMENT");
  bad_options = options;
  bad_options.precision = "double";
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, geometry, bad_options, quiet); }) == "NNRT_INVALID_ARGUMENT");
  bad_options = options;
  bad_options.memory_limit = 1024;
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, geometry, bad_options, quiet); }) == "NNRT_OUT_OF_MEMORY");
  nnunet_rt::PredictOptions single = options;
  single.precision = "single";
  EXPECT(model->predict(slice(ct), DIMS, 1, geometry, single, quiet).labels_u8.size() == N);

  // Cancelling half way, and by throwing; the model works afterwards.
  int reports_after_stop = 0;
  bool stopped = false;
  nnunet_rt::ProgressFn halfway([&](rust::Str stage, double fraction) {
    if (stopped) ++reports_after_stop;
    stopped = stopped || (std::string(stage) == "network" && fraction >= 0.5);
    return !stopped;
  });
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, geometry, options, halfway); }) == "NNRT_CANCELLED");
  EXPECT(stopped && reports_after_stop == 0);
  nnunet_rt::ProgressFn throwing([](rust::Str stage, double) -> bool {
    if (std::string(stage) == "network") throw std::runtime_error("stop here");
    return true;
  });
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, geometry, options, throwing); }, &what) == "NNRT_CANCELLED");
  EXPECT(what.find("stop here") != std::string::npos);
  EXPECT(same_labels(p, model->predict(slice(ct), DIMS, 1, geometry, options, quiet)));

  // A bundle from memory answers as the folder; names, the estimate at the memory limit.
  {
    std::ifstream file(argv[3], std::ios::binary);
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    const rust::Box<nnunet_rt::Model> bundled =
        nnunet_rt::Model::load_bundle(rust::Slice<const std::uint8_t>(bytes.data(), bytes.size()), load);
    EXPECT(same_labels(p, bundled->predict(slice(ct), DIMS, 1, geometry, options, quiet)));
    const std::vector<std::uint8_t> cut(bytes.begin(), bytes.end() - 1);
    EXPECT(status_of([&] { nnunet_rt::Model::load_bundle(rust::Slice<const std::uint8_t>(cut.data(), cut.size()), load); }) ==
           "NNRT_INVALID_MODEL");
  }
  EXPECT(model->channel_names().size() == 1 && std::string(model->channel_names()[0]) == "CT");
  const std::uint64_t estimate = model->estimate_peak_bytes(DIMS, {0.75, 0.75, 2.0}, options);
  nnunet_rt::PredictOptions limited = options;
  limited.memory_limit = estimate;
  EXPECT(same_labels(p, model->predict(slice(ct), DIMS, 1, geometry, limited, quiet)));
  limited.memory_limit = estimate - 1;
  EXPECT(status_of([&] { model->predict(slice(ct), DIMS, 1, geometry, limited, quiet); }) == "NNRT_OUT_OF_MEMORY");

  // A cancel from another thread interrupts the pass that starts after it.
  {
    std::atomic<bool> in_network{false}, cancel_sent{false};
    nnunet_rt::ProgressFn waiting([&](rust::Str stage, double) {
      if (std::string(stage) == "network" && !in_network.exchange(true)) {
        while (!cancel_sent) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      return true;
    });
    nnunet_rt::PredictOptions mirrored = options;
    mirrored.tta = true;
    std::string status;
    std::thread worker([&] { status = status_of([&] { model->predict(slice(ct), DIMS, 1, geometry, mirrored, waiting); }); });
    while (!in_network) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    model->cancel();
    cancel_sent = true;
    worker.join();
    EXPECT(status == "NNRT_CANCELLED");
    EXPECT(same_labels(p, model->predict(slice(ct), DIMS, 1, geometry, options, quiet)));
  }

  // One model, several threads.
  std::vector<std::thread> threads;
  std::vector<int> agreed(4, 0);
  for (std::size_t t = 0; t < agreed.size(); ++t) {
    threads.emplace_back([&, t] {
      nnunet_rt::NoProgress none;
      for (int i = 0; i < 3; ++i) agreed[t] += same_labels(p, model->predict(slice(ct), DIMS, 1, geometry, options, none));
    });
  }
  for (std::thread &thread : threads) thread.join();
  EXPECT(std::all_of(agreed.begin(), agreed.end(), [](int n) { return n == 3; }));

  std::printf("binding: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
