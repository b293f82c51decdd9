# SPDX-License-Identifier: MIT
#
# dtx_add_service(<target> <file.proto> [IMPORT_DIRS <dir>...])
#
# Generates the typed dtx service of file.proto and builds it into target
# (which must exist): one protoc run writes nanopb's file.pb.c/.h and
# protoc-gen-dtx's file.dtx.c/.h into ${CMAKE_CURRENT_BINARY_DIR}/dtxgen, the
# two .c files are added to target, that directory to its (public) include
# path, and target links dtx::dtx and nanopb (with PB_ENABLE_MALLOC, as
# Debian's nanopb library is built). Include "file.dtx.h" in your code. To
# use one .proto in several targets of a directory, add it to a library
# they link: a .proto is generated once per directory.
#
# The proto's name inside protoc (and so the generated paths and #includes)
# is relative to the first IMPORT_DIRS entry that holds it, else to its own
# directory; IMPORT_DIRS are also where imports and nanopb .options files
# are looked for. A file.options next to file.proto is used automatically.
# protoc re-runs when the .proto or anything it imports changes (depfile),
# and when its .options file or the generator changes.
#
# Debian's nanopb has no nanopb_generate_cpp(), and its copy of
# google/protobuf/descriptor.proto (which dtx/options.proto imports) lives in
# nanopb's Python package, not under /usr/include; both are dealt with here.
# Used in-tree (the samples and tests) and installed with dtxConfig.cmake;
# the includer sets DTX_GENERATOR (protoc-gen-dtx), DTX_GENERATOR_FILES (what
# it runs) and DTX_PROTO_DIR (the directory holding dtx/options.proto).

include_guard(GLOBAL)

find_program(DTX_PROTOC protoc)
find_program(DTX_NANOPB_PLUGIN protoc-gen-nanopb)
find_program(DTX_NANOPB_GENERATOR nanopb_generator.py)
if(NOT DTX_PROTOC OR NOT DTX_NANOPB_PLUGIN OR NOT DTX_NANOPB_GENERATOR)
  message(FATAL_ERROR "dtx_add_service needs protoc (protobuf-compiler) and "
    "nanopb's protoc-gen-nanopb and nanopb_generator.py (nanopb)")
endif()

# Where google/protobuf/descriptor.proto is: asked of nanopb's own Python
# package (the interpreter nanopb runs under), else the usual include
# directories; DTX_DESCRIPTOR_PROTO_DIR may be set to skip the search.
if(NOT DTX_DESCRIPTOR_PROTO_DIR)
  execute_process(
    COMMAND /usr/bin/python3 -c
      "import os, proto; print(os.path.dirname(proto.__file__))"
    OUTPUT_VARIABLE _dtx_nanopb_py OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_QUIET)
  find_path(DTX_DESCRIPTOR_PROTO_DIR google/protobuf/descriptor.proto
    HINTS ${_dtx_nanopb_py}
    PATHS /usr/include /usr/local/include
    DOC "directory holding google/protobuf/descriptor.proto")
  if(NOT DTX_DESCRIPTOR_PROTO_DIR)
    message(FATAL_ERROR "google/protobuf/descriptor.proto not found: "
      "install nanopb (its Python package ships it) or set "
      "DTX_DESCRIPTOR_PROTO_DIR")
  endif()
endif()

function(dtx_add_service target proto)
  cmake_parse_arguments(S "" "" "IMPORT_DIRS" ${ARGN})
  if(S_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "dtx_add_service: unknown arguments "
      "${S_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "dtx_add_service: no target ${target} (create it "
      "first, then add the service to it)")
  endif()
  get_filename_component(abs "${proto}" ABSOLUTE)
  if(NOT EXISTS "${abs}")
    message(FATAL_ERROR "dtx_add_service: ${abs} does not exist")
  endif()
  get_filename_component(dir "${abs}" DIRECTORY)

  # The proto's root: the first import directory that holds it.
  set(root "${dir}")
  set(dirs "")
  foreach(d IN LISTS S_IMPORT_DIRS)
    get_filename_component(d "${d}" ABSOLUTE)
    list(APPEND dirs "${d}")
  endforeach()
  foreach(d IN LISTS dirs)
    file(RELATIVE_PATH rel "${d}" "${abs}")
    if(NOT rel MATCHES "^\\.\\./")
      set(root "${d}")
      break()
    endif()
  endforeach()
  file(RELATIVE_PATH rel "${root}" "${abs}")
  string(REGEX REPLACE "\\.proto$" "" base "${rel}")
  list(REMOVE_ITEM dirs "${root}")
  list(PREPEND dirs "${root}")

  set(out "${CMAKE_CURRENT_BINARY_DIR}/dtxgen")
  set(outputs "${out}/${base}.pb.c" "${out}/${base}.pb.h"
    "${out}/${base}.dtx.c" "${out}/${base}.dtx.h")
  set(includes "")
  set(opt_dirs "")
  foreach(d IN LISTS dirs)
    list(APPEND includes "-I${d}")
    string(APPEND opt_dirs "-I${d},")
  endforeach()
  set(depends "${abs}" ${DTX_GENERATOR_FILES})
  string(REGEX REPLACE "\\.proto$" ".options" options "${abs}")
  if(EXISTS "${options}")
    list(APPEND depends "${options}")
  endif()
  string(MAKE_C_IDENTIFIER "${base}" stem)

  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${CMAKE_COMMAND} -E make_directory "${out}"
    COMMAND ${DTX_PROTOC} ${includes} "-I${DTX_PROTO_DIR}"
      "-I${DTX_DESCRIPTOR_PROTO_DIR}"
      "--plugin=protoc-gen-nanopb=${DTX_NANOPB_PLUGIN}"
      "--nanopb_out=${out}"
      "--nanopb_opt=${opt_dirs}-xdtx/options.proto"
      "--plugin=protoc-gen-dtx=${DTX_GENERATOR}"
      "--dtx_out=${out}"
      "--dtx_opt=${opt_dirs}nanopb=${DTX_NANOPB_GENERATOR}"
      "--dependency_out=${out}/${stem}.d"
      "${abs}"
    DEPENDS ${depends}
    DEPFILE "${out}/${stem}.d"
    COMMENT "protoc: nanopb and dtx code for ${rel}"
    VERBATIM)
  # PUBLIC: a library of generated code passes all of it on, since the
  # generated header includes dtx.h and nanopb's pb.h.
  target_sources(${target} PRIVATE "${out}/${base}.pb.c"
    "${out}/${base}.dtx.c")
  target_include_directories(${target} PUBLIC "${out}")
  target_compile_definitions(${target} PUBLIC PB_ENABLE_MALLOC)
  target_link_libraries(${target} PUBLIC dtx::dtx
    nanopb::protobuf-nanopb-static)
endfunction()
