/* A process whose executable and shared library are deleted while it runs,
 * so that CRIU saves both as ghost files. It starts as /srv/ghost/ghost with
 * libghost.so found through its run path, /srv/ghost/lib; two threads are
 * started, then both files are unlinked and both threads block in read(2)
 * through libghost's ghost_lib_park. "ready" on stderr says they are parked.
 * Build: gcc -g -O1 -pthread -o ghost ghost.c -L. -lghost
 *        -Wl,-rpath,/srv/ghost/lib */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* libghost.so; only functions: no data of the library is referred to here. */
unsigned long ghost_lib_init(void);
const char *ghost_lib_path(void);
void ghost_lib_park(int fd);

char secret[64];                        /* .bss: GHOST_SECRET_6021, written  */
/* .rodata of the executable, never written: only its file pages hold it
 * (a page of its own, away from the RELRO page the loader writes). */
__attribute__((aligned(4096))) const char ghost_exe_rodata[4096] = "GHOST_EXE_RODATA_5519";
volatile unsigned long rodata_len;
static int block_pipe[2];

/* Distinct frames so that the worker's backtrace names its path. */
__attribute__((noinline)) void worker_mid(int fd) { ghost_lib_park(fd); }
static void *worker(void *arg) { (void)arg; worker_mid(block_pipe[0]); return NULL; }

int main(void) {
    char exe[4096];
    ssize_t n;
    const char *lib;
    pthread_t t;

    if (pipe(block_pipe)) return 1;
    /* Built at run time: the whole string is in no file. */
    snprintf(secret, sizeof secret, "GHOST_SECRET_%d", 6021);
    rodata_len = ghost_lib_init();
    for (const volatile char *p = ghost_exe_rodata; *p; p++) rodata_len++;

    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    lib = ghost_lib_path();
    if (n <= 0 || !lib) { fprintf(stderr, "cannot find my files\n"); return 1; }
    exe[n] = 0;

    pthread_create(&t, NULL, worker, NULL);

    /* Both files go: the process keeps them only as its mappings. */
    if (unlink(exe) || unlink(lib)) { perror("unlink"); return 1; }
    fprintf(stderr, "deleted %s %s\nready\n", exe, lib);
    ghost_lib_park(block_pipe[0]);
}
