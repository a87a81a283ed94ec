/* The C header compiles alone as C99 (-Wall -Wextra -Werror -pedantic), and twice over. */
#include "nnunet_rt.h"
#include "nnunet_rt.h"

int main(void) {
  nnrt_volume volume = {0};
  nnrt_progress_fn progress = 0;
  (void)volume;
  (void)progress;
  return nnrt_abi_version() == NNRT_ABI_VERSION ? 0 : 1;
}
