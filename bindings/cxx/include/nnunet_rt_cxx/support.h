// Hand-written part of the nnunet-rt C++ binding, included by the generated header
// "nnunet_rt_cxx/src/lib.rs.h": the progress interface predictions report to, and a function
// that reads the status out of an error.
#pragma once

#include <cstring>
#include <exception>
#include <string>
#include <utility>

#include "rust/cxx.h"

namespace nnunet_rt {

/// Receives progress from Model::predict, on the calling thread: `stage` is "preprocess",
/// "network" (reported after every tile) or "export", `fraction` is in [0, 1] within the
/// stage. Return false to cancel: predict then throws an error with status NNRT_CANCELLED.
/// An exception thrown by report() also cancels, and its text is in the error's message.
class Progress {
 public:
  virtual ~Progress() = default;
  virtual bool report(rust::Str stage, double fraction) = 0;
};

/// Progress that ignores every report.
class NoProgress final : public Progress {
 public:
  bool report(rust::Str, double) override { return true; }
};

/// Progress from any callable `bool(rust::Str stage, double fraction)`.
template <typename F>
class ProgressFn final : public Progress {
 public:
  explicit ProgressFn(F f) : f_(std::move(f)) {}
  bool report(rust::Str stage, double fraction) override { return f_(stage, fraction); }

 private:
  F f_;
};

/// The status name ("NNRT_SHAPE_MISMATCH"...) that starts the message of every error the
/// binding throws (rust::Error); "" for other exceptions.
inline std::string status_name(const std::exception &error) {
  const char *what = error.what();
  const char *colon = std::strchr(what, ':');
  if (std::strncmp(what, "NNRT_", 5) != 0 || colon == nullptr) return std::string();
  return std::string(what, static_cast<std::size_t>(colon - what));
}

}  // namespace nnunet_rt
