# xgrad_add_doctest_files(<target> <test source>...): one ctest test per test
# file, named by its path under tests/ ("core/ops/test_fused"), running every
# test case of that file through doctest's source-file filter.
#
# Not doctest_discover_tests: it passes each case's name as doctest's -tc
# filter, and doctest splits filters at commas, so a case named "a, b" matched
# nothing and passed without running. A file filter has no such names, and a
# run that executes no test case fails.
function(xgrad_add_doctest_files target)
  get_filename_component(tests_dir ${CMAKE_CURRENT_FUNCTION_LIST_DIR} ABSOLUTE)
  foreach(source ${ARGN})
    get_filename_component(source ${source} ABSOLUTE)
    file(RELATIVE_PATH path ${tests_dir} ${source})
    string(REGEX REPLACE "\\.cpp$" "" name ${path})
    add_test(NAME ${name} COMMAND ${target} --source-file=*/${path} --no-version)
    set_tests_properties(${name} PROPERTIES FAIL_REGULAR_EXPRESSION "test cases: +0 [|]")
  endforeach()
endfunction()
