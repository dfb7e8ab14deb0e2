/* The program behind the per-architecture fixtures (scripts/make-arch-fixtures).
 * Cross-compiled statically for each architecture and run under qemu-user,
 * it starts two workers that block in read(2) three frames deep, loads a
 * known pattern into a vector (or floating-point) register of each thread,
 * records each thread's id and thread pointer and the program break, writes
 * its memory map, auxiliary vector and stat to $ARCHES_OUT.maps, .auxv and
 * .stat (as qemu-user shows them to the guest), and calls checkpoint_here(),
 * where the capture script stops it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

char secret[64] = "RANDOM_ARCH_KEY_6";      /* .data                       */
char *heap_marker;                          /* a string on the heap        */
__thread long tls_value;                    /* per-thread                  */
void *volatile thread_pointers[3];          /* each thread's TLS pointer   */
volatile long thread_tids[3];               /* and its thread id           */
void *volatile program_break;               /* sbrk(0) at the checkpoint   */
volatile int parked;
static int block_pipe[2];

/* 16 bytes per thread, loaded into a vector register that the read(2)
 * wrapper leaves alone. */
static const uint8_t patterns[3][16] __attribute__((aligned(16))) = {
    {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01},
    {0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe, 0x0b, 0xad, 0xf0, 0x0d, 0xfe, 0xed, 0xfa, 0xce},
    {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x13, 0x57, 0x9b, 0xdf, 0x24, 0x68, 0xac, 0xe0},
};

static void load_pattern(int i) {
    const uint8_t *p = patterns[i];
#if defined(__aarch64__)
    __asm__ volatile("ld1 {v31.16b}, [%0]" : : "r"(p) : "v31", "memory");
#elif defined(__riscv)
    __asm__ volatile("fld f31, 0(%0)\n\tfld f30, 8(%0)" : : "r"(p) : "f31", "f30", "memory");
#elif defined(__powerpc64__)
    __asm__ volatile("lvx 31, 0, %0\n\tlfd 31, 0(%0)" : : "r"(p) : "v31", "fr31", "memory");
#elif defined(__s390x__)
    __asm__ volatile("vl %%v31, 0(%0)\n\tld %%f15, 8(%0)" : : "a"(p) : "v31", "f15", "memory");
#elif defined(__i386__)
    __asm__ volatile("movdqu (%0), %%xmm7" : : "r"(p) : "xmm7", "memory");
#elif defined(__arm__)
    __asm__ volatile("vldmia %0, {d30-d31}" : : "r"(p) : "d30", "d31", "memory");
#elif defined(__mips__)
    __asm__ volatile("ldc1 $f31, 0(%0)\n\tldc1 $f30, 8(%0)" : : "r"(p) : "$f31", "$f30", "memory");
#elif defined(__loongarch__)
    __asm__ volatile("fld.d $f31, %0, 0\n\tfld.d $f30, %0, 8" : : "r"(p) : "$f31", "$f30", "memory");
#endif
}

static void *thread_pointer(void) {
#if defined(__i386__)
    void *tp;
    __asm__("mov %%gs:0, %0" : "=r"(tp));
    return tp;
#elif defined(__powerpc64__)
    void *tp;
    __asm__("mr %0, 13" : "=r"(tp));
    return tp;
#else
    return __builtin_thread_pointer();
#endif
}

__attribute__((noinline)) void park(int i) {
    char c;
    load_pattern(i);
    __atomic_add_fetch(&parked, 1, __ATOMIC_SEQ_CST);
    for (;;)
        read(block_pipe[0], &c, 1);
}

/* Distinct frames so that a backtrace names each thread's path. */
__attribute__((noinline)) void worker_leaf(long id) {
    tls_value = 1000 + id;
    thread_pointers[id] = thread_pointer();
    thread_tids[id] = syscall(SYS_gettid);
    park((int)id);
    __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) void worker_mid(long id) {
    worker_leaf(id);
    __asm__ volatile("" ::: "memory");
}
static void *worker(void *arg) {
    worker_mid((long)arg);
    return NULL;
}

/* Copies /proc/self/FILE (qemu-user shows the guest's view) to PATH. */
static void save(const char *file, const char *path) {
    char buf[65536];
    int in = open(file, O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ssize_t n;
    if (in < 0 || out < 0) {
        perror(file);
        exit(1);
    }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            exit(1);
    close(in);
    close(out);
}

/* The capture script stops the process here. */
__attribute__((noinline)) void checkpoint_here(void) { __asm__ volatile("" ::: "memory"); }

int main(int argc, char **argv) {
    char path[4096];
    pthread_t t[2];
    const char *out = getenv("ARCHES_OUT");
    (void)argc;
    (void)argv;
    if (!out) {
        fprintf(stderr, "set ARCHES_OUT to the prefix of the files to write\n");
        return 2;
    }
    heap_marker = malloc(1 << 16);
    strcpy(heap_marker, "HEAP_MARKER_77");
    tls_value = 42;
    thread_pointers[0] = thread_pointer();
    thread_tids[0] = syscall(SYS_gettid);
    if (pipe(block_pipe))
        return 1;
    for (long i = 1; i <= 2; i++)
        pthread_create(&t[i - 1], NULL, worker, (void *)i);
    while (__atomic_load_n(&parked, __ATOMIC_SEQ_CST) < 2)
        sched_yield();
    usleep(200 * 1000);     /* let both workers enter read(2) */
    snprintf(path, sizeof path, "%s.maps", out);
    save("/proc/self/maps", path);
    snprintf(path, sizeof path, "%s.auxv", out);
    save("/proc/self/auxv", path);
    snprintf(path, sizeof path, "%s.stat", out);
    save("/proc/self/stat", path);
    program_break = sbrk(0);
    load_pattern(0);
    checkpoint_here();
    return 0;
}
