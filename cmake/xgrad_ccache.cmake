# ccache as the compiler launcher, set up for precompiled headers: ccache caches
# a file compiled with one only when told that the header's macros and time
# stamps may be ignored (its manual's "Precompiled headers" section). Included
# by xgrad's top-level build and by the sanitizer projects under tests/.
set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env
  CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  ${CCACHE_PROGRAM})
