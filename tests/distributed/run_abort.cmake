# Runs abort_on_error under mpirun and passes when the job exits non-zero, in
# time, with the failing rank's message. -DMPIEXEC=... -DFLAGS=... -DPROGRAM=...
# -DMODE=... -DEXPECT=<text the output must contain>
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
execute_process(COMMAND ${MPIEXEC} -np 2 ${flags} ${PROGRAM} ${MODE}
  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
message(STATUS "exit: ${result}\nstdout:\n${out}\nstderr:\n${err}")
if(result MATCHES "timeout|Process terminated")
  message(FATAL_ERROR "the job hung instead of aborting (${result})")
endif()
if(result EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit status (got 0)")
endif()
string(FIND "${out}${err}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "expected the output to contain '${EXPECT}'")
endif()
