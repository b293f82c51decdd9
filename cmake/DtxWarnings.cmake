# SPDX-License-Identifier: MIT
# dtx_warnings(target): our code builds with warnings as errors (STYLE.md).
# Generated nanopb code is compiled without -Werror: its warnings are not ours
# to fix, and a newer generator must not break the build.
function(dtx_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes
    -Wshadow -Wno-missing-field-initializers)
  target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L)
endfunction()
