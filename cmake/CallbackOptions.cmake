# Warnings and sanitizers, applied to every target of the project through one interface target.
add_library(callback_build_options INTERFACE)
# -Wno-missing-field-initializers: g++ 12 warns on C++20 designated initializers that
# leave members to their defaults, which is exactly how OptionSpec and requests are written.
target_compile_options(callback_build_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-missing-field-initializers)
if(CALLBACK_SANITIZE)
  target_compile_options(callback_build_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(callback_build_options INTERFACE -fsanitize=address,undefined)
endif()
# The libFuzzer build (tests/fuzz, build-fuzz/): every library gets libFuzzer's coverage
# instrumentation with ASan and UBSan; the fuzz programs link libFuzzer's main.
if(CALLBACK_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "CALLBACK_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  target_compile_options(callback_build_options INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(callback_build_options INTERFACE -fsanitize=address,undefined)
endif()

# The programs' allocator (callbackd, callbackctl, the load tools): gperftools' tcmalloc_minimal
# where it is installed (Debian's libgoogle-perftools-dev). glibc's malloc and free were ~14 %
# of a loaded callbackd's CPU (many small short-lived strings and JSON values from several
# threads); tcmalloc takes ~12 % off the CPU per callback (benchmarks/README.md, issue 11).
# Not with the sanitizers or libFuzzer, which bring their own allocator, and never in
# libcallback: an embedding application keeps its own.
option(CALLBACK_TCMALLOC "Link the programs with tcmalloc_minimal when it is installed" ON)
add_library(callback_malloc INTERFACE)
if(CALLBACK_TCMALLOC AND NOT CALLBACK_SANITIZE AND NOT CALLBACK_FUZZ)
  find_library(CALLBACK_TCMALLOC_LIBRARY NAMES tcmalloc_minimal)
  if(CALLBACK_TCMALLOC_LIBRARY)
    # Nothing calls it by name: without --no-as-needed the linker would drop it.
    target_link_libraries(callback_malloc INTERFACE
      "-Wl,--push-state,--no-as-needed" "${CALLBACK_TCMALLOC_LIBRARY}" "-Wl,--pop-state")
    message(STATUS "callback: the programs allocate with ${CALLBACK_TCMALLOC_LIBRARY}")
  else()
    message(STATUS "callback: tcmalloc_minimal not found (libgoogle-perftools-dev): the programs use glibc's malloc")
  endif()
endif()

# callback_add_plugin(<target> ENTRY <file> [SOURCES ...] [LIBRARIES ...])
# A plugin is a MODULE library placed where the loader looks for it, in the build tree
# and in the install tree. ENTRY holds the CALLBACK_PLUGIN(...) declaration; the rest of
# its code goes into <target>_impl, a static library that tests link directly so they can
# exercise the code without the loader (and several plugins' code in one test binary).
function(callback_add_plugin target)
  cmake_parse_arguments(P "" "ENTRY" "SOURCES;LIBRARIES" ${ARGN})
  if(P_SOURCES)
    add_library(${target}_impl STATIC ${P_SOURCES})
    target_link_libraries(${target}_impl PUBLIC callback::callback ${P_LIBRARIES} PRIVATE callback_build_options)
    target_include_directories(${target}_impl PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}")
    set(_impl ${target}_impl)
  endif()
  add_library(${target} MODULE ${P_ENTRY})
  target_link_libraries(${target} PRIVATE callback::callback ${_impl} callback_build_options)
  set_target_properties(${target} PROPERTIES
    PREFIX "" OUTPUT_NAME "callback_${target}"
    LIBRARY_OUTPUT_DIRECTORY "${CALLBACK_PLUGIN_OUTPUT_DIR}")
  if(CALLBACK_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION "${CALLBACK_PLUGIN_INSTALL_DIR}")
  endif()
endfunction()

# callback_embed_files(<output.cpp> FUNCTION ns::name DIR folder FILES a b ...): compiles
# the files into <output.cpp> as ns::name(), a list of (file name, bytes).
function(callback_embed_files output)
  cmake_parse_arguments(E "" "FUNCTION;DIR" "FILES" ${ARGN})
  set(paths)
  foreach(file ${E_FILES})
    list(APPEND paths ${E_DIR}/${file})
  endforeach()
  string(REPLACE ";" "," joined "${E_FILES}")
  add_custom_command(OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DOUTPUT=${output} -DDIR=${E_DIR} -DFILES=${joined} -DFUNCTION=${E_FUNCTION}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_files.cmake
    DEPENDS ${paths} ${PROJECT_SOURCE_DIR}/cmake/embed_files.cmake
    COMMENT "Embedding ${E_FILES}")
endfunction()
