# aotc_add_model_library(<target> SOURCES <files...>)
# Builds a model library as docs/ABI.md requires: a shared library exporting
# only the five aotc_model_* functions, hidden visibility, libstdc++ and
# libgcc linked statically so its C++ never meets the host's.
set(_AOTC_MODEL_LIBRARY_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(aotc_add_model_library target)
  cmake_parse_arguments(ARG "" "" "SOURCES;INCLUDE_DIRS" ${ARGN})
  add_library(${target} SHARED ${ARG_SOURCES})
  target_include_directories(${target} PRIVATE ${ARG_INCLUDE_DIRS})
  set_target_properties(${target} PROPERTIES PREFIX "" CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${_AOTC_MODEL_LIBRARY_DIR}/model_library.map")
  target_link_options(${target} PRIVATE
    "-Wl,--version-script=${_AOTC_MODEL_LIBRARY_DIR}/model_library.map"
    -static-libstdc++ -static-libgcc -Wl,--no-undefined -Wl,-z,noexecstack)
  target_compile_options(${target} PRIVATE "-ffile-prefix-map=${CMAKE_SOURCE_DIR}/=")
endfunction()
