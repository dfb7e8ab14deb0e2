/* libghost.so: a small shared library that ghost.c calls into and then
 * deletes, so that a checkpoint holds it only as a ghost file. Both of the
 * program's threads block in read(2) under ghost_lib_park, so a backtrace
 * of either passes through this library.
 * Build: gcc -shared -fPIC -g -O1 -o libghost.so libghost.c
 * (gcc's default --build-id gives it a GNU build-id note). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

/* .rodata, never written: only the library file's pages (the ghost file's
 * bytes, once it is deleted) hold this string. It fills a page of its own,
 * so that no page the process writes (the RELRO page, whose file page the
 * end of .rodata shares) and no vector load of a neighbouring string copies
 * it. The program must not refer to it (a PIE's copy relocation would copy
 * it into the executable). */
__attribute__((aligned(4096))) const char ghost_rodata[4096] = "GHOST_RODATA_3377";

/* .data, overwritten at run time: the page becomes the process's own copy
 * and holds GHOST_LIB_MARKER_8842, a string no file holds. */
char ghost_lib_marker[32] = "not yet written";

long ghost_lib_calls;

/* Writes the marker; returns the length of the read-only string, which
 * brings its page in without writing to it. */
__attribute__((noinline)) unsigned long ghost_lib_init(void) {
    snprintf(ghost_lib_marker, sizeof ghost_lib_marker, "GHOST_LIB_MARKER_%d", 8842);
    unsigned long n = 0;
    for (const volatile char *p = ghost_rodata; *p; p++) n++;
    return n;
}

/* The path the dynamic loader opened this library by. */
const char *ghost_lib_path(void) {
    Dl_info info;
    if (!dladdr((void *)ghost_rodata, &info)) return NULL;
    return info.dli_fname;
}

__attribute__((noinline, noreturn)) static void ghost_lib_wait(int fd) {
    char c;
    for (;;) read(fd, &c, 1);
}

/* Blocks forever in read(2) on fd, two frames down in this library. */
__attribute__((noinline)) void ghost_lib_park(int fd) {
    __atomic_add_fetch(&ghost_lib_calls, 1, __ATOMIC_SEQ_CST);
    ghost_lib_wait(fd);
}
