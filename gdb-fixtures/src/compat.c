/* A 32-bit x86 program (gcc -m32) for the i386 (compat) fixture: a task an
 * x86-64 kernel runs in compatibility mode, whose core must show what a
 * kernel core of it shows. Every value below is something to see again. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

char secret[64];                        /* .bss                                */
const char *heap_marker;                /* points into malloc'd memory         */
__thread long tls_value;                /* through the GDT TLS slot %gs selects */
char *sparse;                           /* 64 MiB, two pages touched           */
static int block_pipe[2];

static void park(void) {                /* blocks forever in read(2)           */
    char c;
    for (;;) read(block_pipe[0], &c, 1);
}

/* Distinct frames so that a backtrace names each thread's path. */
__attribute__((noinline)) void worker_leaf(long id) { tls_value = 1000 + id; park(); }
__attribute__((noinline)) void worker_mid(long id) { worker_leaf(id); }
static void *worker(void *arg) { worker_mid((long)arg); return NULL; }

/* Known values in x87, SSE and AVX registers while the thread blocks in a
 * raw int $0x80 read: ymm0 and ymm1 hold two patterns, st0-st2 hold pi,
 * -0.375 and 1e100 (TOP is 5, physical registers 0-4 empty). */
static const struct {
    uint32_t ymm0[8], ymm1[8];
    double st[2];
} patterns = {
    {0x11111111, 0x22222222, 0x33333333, 0x44444444,
     0x55555555, 0x66666666, 0x77777777, 0x88888888},
    {0xdeadbeef, 0xcafebabe, 0x0badf00d, 0xfeedface,
     0x01234567, 0x89abcdef, 0x13579bdf, 0x2468ace0},
    {1e100, -0.375},
};

__attribute__((noinline)) static void *vector_worker(void *arg) {
    (void)arg;
    tls_value = 2000;
    char c;
    for (;;) {
        long ret;
        __asm__ volatile(
            "fninit\n\t"
            "fldl 64(%%esi)\n\t"
            "fldl 72(%%esi)\n\t"
            "fldpi\n\t"
            "vmovdqu (%%esi), %%ymm0\n\t"
            "vmovdqu 32(%%esi), %%ymm1\n\t"
            "int $0x80"
            : "=a"(ret)
            : "a"(3 /* SYS_read */), "b"(block_pipe[0]), "c"(&c), "d"(1), "S"(&patterns)
            : "memory", "st", "st(1)", "st(2)");
        (void)ret;
    }
    return NULL;
}

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    pipe(block_pipe);
    strcpy(secret, "RANDOM_1432_KEY");
    char *heap = malloc(1 << 20);
    memset(heap, 'A', 1 << 20);
    strcpy(heap, "HEAP_MARKER_77");
    heap_marker = heap;
    tls_value = 42;

    sparse = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    strcpy(sparse, "SPARSE_FIRST");
    strcpy(sparse + (64 << 20) - 4096, "SPARSE_LAST");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    pthread_t t;
    for (long i = 1; i <= 2; i++) pthread_create(&t, NULL, worker, (void *)i);
    if (__builtin_cpu_supports("avx")) pthread_create(&t, NULL, vector_worker, NULL);

    fprintf(stderr, "ready\n");
    park();
}
