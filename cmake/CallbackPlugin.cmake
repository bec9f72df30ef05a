# For out-of-tree plugins: callback_add_external_plugin(<target> <sources>...)
# builds a MODULE that the callback loader accepts (no "lib" prefix, hidden symbols,
# the same C++ standard as libcallback).
function(callback_add_external_plugin target)
  add_library(${target} MODULE ${ARGN})
  target_link_libraries(${target} PRIVATE callback::callback)
  set_target_properties(${target} PROPERTIES PREFIX "" CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
endfunction()
