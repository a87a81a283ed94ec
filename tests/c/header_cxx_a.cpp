// The C header and the header-only C++ layer compile as C++17 (-Wall -Wextra -Werror
// -pedantic), twice in one translation unit, and in two units of one program (nothing defined
// in the headers may clash at link time). See also header_cxx_b.cpp.
#include "nnunet_rt.h"
#include "nnunet_rt.h"
#include "nnunet_rt.hpp"
#include "nnunet_rt.hpp"

#include <cstdio>
#include <string>
#include <type_traits>

std::string version_from_b();

int main() {
  static_assert(std::is_nothrow_move_constructible<nnrt::Model>::value, "models move");
  static_assert(!std::is_copy_constructible<nnrt::Model>::value, "models are not copied");
  static_assert(!std::is_copy_constructible<nnrt::Result>::value, "results are not copied");
  const std::string a = nnrt::version();
  if (a != version_from_b() || nnrt_abi_version() != NNRT_ABI_VERSION) return 1;
  try {
    nnrt::Model::load("/nonexistent/model");
    return 1;
  } catch (const nnrt::Error &e) {
    if (e.status() != NNRT_IO) return 1;
    std::printf("%s\n", e.what());
  }
  std::printf("%s\n", a.c_str());
  return 0;
}
