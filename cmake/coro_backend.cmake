# Coroutine context switch: hand-written assembly where we have it, ucontext
# elsewhere (or when asked for, e.g. to compare the two).
if(CANTEEN_CORO_BACKEND STREQUAL "auto")
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(CANTEEN_CORO_BACKEND_RESOLVED "asm")
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(CANTEEN_CORO_BACKEND_RESOLVED "asm")
  else()
    set(CANTEEN_CORO_BACKEND_RESOLVED "ucontext")
  endif()
else()
  set(CANTEEN_CORO_BACKEND_RESOLVED "${CANTEEN_CORO_BACKEND}")
endif()
message(STATUS "canteen: coroutine switch backend ${CANTEEN_CORO_BACKEND_RESOLVED}")
