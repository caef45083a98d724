# CTest driver for the consumer project (cmake -P). MODE=install installs the
# already-built xgrad from XGRAD_BUILD_DIR into a fresh prefix and uses
# find_package; MODE=deb packs that build with `cpack -G DEB`, checks the
# package's control fields and unpacks it as dpkg would install it (into a
# folder standing for /, so the machine is left untouched), then uses
# find_package on it; MODE=subdir builds xgrad from XGRAD_SOURCE_DIR by add_subdirectory.
# Then it builds and runs the consumer. Everything happens under WORK_DIR.
cmake_minimum_required(VERSION 3.20)
foreach(var MODE XGRAD_SOURCE_DIR WORK_DIR CXX GENERATOR BUILD_TYPE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: expected -D${var}=... (got nothing)")
  endif()
endforeach()

set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})
set(configure_args -S ${CMAKE_CURRENT_LIST_DIR} -B ${build} -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=${BUILD_TYPE})

if(MODE STREQUAL "install")
  if(NOT DEFINED XGRAD_BUILD_DIR)
    message(FATAL_ERROR "run_consumer.cmake: MODE=install expects -DXGRAD_BUILD_DIR=...")
  endif()
  set(prefix ${WORK_DIR}/prefix)
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${XGRAD_BUILD_DIR} --prefix ${prefix}
    COMMAND_ERROR_IS_FATAL ANY)
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
elseif(MODE STREQUAL "deb")
  if(NOT DEFINED XGRAD_BUILD_DIR)
    message(FATAL_ERROR "run_consumer.cmake: MODE=deb expects -DXGRAD_BUILD_DIR=...")
  endif()
  set(packages ${WORK_DIR}/packages)
  execute_process(COMMAND cpack -G DEB -B ${packages} --config ${XGRAD_BUILD_DIR}/CPackConfig.cmake
    COMMAND_ERROR_IS_FATAL ANY OUTPUT_QUIET)
  file(GLOB deb ${packages}/libxgrad-dev_*.deb)
  list(LENGTH deb count)
  if(NOT count EQUAL 1)
    message(FATAL_ERROR "run_consumer.cmake: expected one libxgrad-dev .deb in ${packages} (got '${deb}')")
  endif()
  execute_process(COMMAND dpkg-deb --field ${deb} Package Depends OUTPUT_VARIABLE fields
    COMMAND_ERROR_IS_FATAL ANY)
  if(NOT fields MATCHES "Package: libxgrad-dev" OR NOT fields MATCHES "libxtensor-dev")
    message(FATAL_ERROR "run_consumer.cmake: unexpected control fields:\n${fields}")
  endif()
  set(root ${WORK_DIR}/root)
  execute_process(COMMAND dpkg-deb --extract ${deb} ${root} COMMAND_ERROR_IS_FATAL ANY)
  file(GLOB_RECURSE config ${root}/usr/lib/xgradConfig.cmake)
  if(NOT EXISTS ${root}/usr/include/xgrad/xgrad.hpp OR NOT config)
    message(FATAL_ERROR "run_consumer.cmake: the .deb lacks /usr/include/xgrad/xgrad.hpp or xgradConfig.cmake")
  endif()
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${root}/usr -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
elseif(MODE STREQUAL "subdir")
  # The library's files compile with the same command lines as in the build
  # that runs this test, so with ccache (LAUNCHER) they come from its cache.
  list(APPEND configure_args -DXGRAD_SOURCE_DIR=${XGRAD_SOURCE_DIR} -DXGRAD_SANITIZE=${SANITIZE}
    -DCMAKE_COMPILE_WARNING_AS_ERROR=${WARNING_AS_ERROR})
  if(LAUNCHER)
    list(APPEND configure_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
  endif()
else()
  message(FATAL_ERROR "run_consumer.cmake: MODE must be install or subdir (got '${MODE}')")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} ${configure_args} COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND ${CMAKE_COMMAND} --build ${build} -j2 COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND ${build}/consumer COMMAND_ERROR_IS_FATAL ANY)
