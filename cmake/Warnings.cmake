# Project-wide warning flags; -Werror unless CONCLAVE_WERROR=OFF.
set(CONCLAVE_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Wunused -Woverloaded-virtual -Wimplicit-fallthrough)
if(CONCLAVE_WERROR)
  list(APPEND CONCLAVE_WARNINGS -Werror)
endif()

# conclave_library(NAME SOURCES... DEPS ...) : a library of one folder, with our warnings.
function(conclave_target_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${CONCLAVE_WARNINGS}>)
endfunction()
