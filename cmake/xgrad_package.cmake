# `cpack -G DEB` in a build folder makes libxgrad-dev_<version>_<arch>.deb: the
# static libraries, the headers and the CMake package files, installed under
# /usr, depending on the Debian packages xgrad's headers and libraries need.
# tests/consumer/run_consumer.cmake (MODE=deb) builds a consumer against it.
set(CPACK_PACKAGE_NAME libxgrad-dev)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "xgrad developers <xgrad-dev@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "autograd and PyTorch-style modules in C++ for training feed-forward blocks")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libxtensor-dev, libxtensor-blas-dev, libopenblas-dev, libfmt-dev, libzip-dev, nlohmann-json3-dev")
set(CPACK_GENERATOR DEB)
include(CPack)
