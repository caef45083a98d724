# xgrad_add_layer(<layer> SOURCES ... [FUZZED <sources>...] [COLD <sources>...]
#                 [DEPENDS <targets>...] [PRECOMPILE <headers>...])
#
# One library per layer folder (core, nn, optim, checkpoint): the target
# xgrad_<layer> (alias xgrad::<layer>), its public headers in <folder>/include,
# its private ones in <folder>/src, visible to no other layer. A layer links
# only the layers it DEPENDS on, so including a higher layer's header fails to
# compile, and tests/test_layers.cpp checks the folders' #includes as well.
# COLD: sources off the training step's path (files, printing, reports), which
# a Release build compiles at -O1.
# xgrad_precompile(<target> <header>...): the headers as a precompiled header of
# <target>, unless XGRAD_PRECOMPILE_HEADERS is off. Private: nothing of it
# reaches a project that links the target. Used for the tests, not the layers:
# a layer's files spend their time on their own code, and without a
# precompiled header (whose path is the build folder's) an outside build of
# the same sources hits ccache.
function(xgrad_precompile target)
  if(XGRAD_PRECOMPILE_HEADERS)
    target_precompile_headers(${target} PRIVATE ${ARGN})
  endif()
endfunction()

function(xgrad_add_layer layer)
  cmake_parse_arguments(arg "" "" "SOURCES;FUZZED;COLD;DEPENDS;PRECOMPILE" ${ARGN})
  set(target xgrad_${layer})
  add_library(${target} ${arg_SOURCES})
  add_library(xgrad::${layer} ALIAS ${target})
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON EXPORT_NAME ${layer})
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${target} PUBLIC ${arg_DEPENDS})
  # No code here reads errno or the floating-point exception flags; without
  # these GCC cannot vectorise loops with std::sqrt or a conditional select. No
  # FMA contraction, so the AVX2 and AVX-512 kernel clones round like the default one.
  target_compile_options(${target} PRIVATE -Wall -Wextra -fno-math-errno -fno-trapping-math
    -ffp-contract=off)
  if(XGRAD_SANITIZE)
    target_compile_options(${target} PUBLIC -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
    target_compile_definitions(${target} PUBLIC XTENSOR_ENABLE_ASSERT)
  endif()
  if(XGRAD_BUILD_FUZZERS AND arg_FUZZED)
    # Coverage for libFuzzer to steer by, in the FUZZED sources: the readers
    # the fuzz targets feed (tests/fuzz/). Elsewhere it would only slow the
    # sanitizer build (a file compiles 60 % slower with it) and its tests. The
    # sanitizer runtimes that every other executable links answer its callbacks.
    set_property(SOURCE ${arg_FUZZED} APPEND PROPERTY COMPILE_OPTIONS -fsanitize=fuzzer-no-link)
  endif()
  if(arg_COLD)
    # Their time goes to parsing and system calls, not to loops that -O3 would
    # vectorise, and -O1 compiles them in 2/3 of -O3's time (GCC 12: safetensors,
    # key_map and print took 24.8 s at -O3, 15.8 s at -O1). Last on the command
    # line, so it overrides CMAKE_CXX_FLAGS_RELEASE's -O3.
    set_property(SOURCE ${arg_COLD} APPEND PROPERTY COMPILE_OPTIONS $<$<CONFIG:Release>:-O1>)
  endif()
  if(XGRAD_PRECOMPILE_LAYERS AND arg_PRECOMPILE)
    xgrad_precompile(${target} ${arg_PRECOMPILE})
    # Built with other flags (coverage), they cannot use the target's header.
    if(arg_FUZZED)
      set_source_files_properties(${arg_FUZZED} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    endif()
  endif()
  if(XGRAD_INSTALL)
    install(TARGETS ${target} EXPORT xgradTargets
      ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
      LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
    install(DIRECTORY include/xgrad DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
endfunction()
