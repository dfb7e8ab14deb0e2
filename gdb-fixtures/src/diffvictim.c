/* diffvictim: a process that changes in known ways between two
 * checkpoints, for `criu2core diff`. It sets up, writes what it set up to
 * the record file (argv[1]) and prints "ready"; on SIGUSR1 it changes
 * (a heap write, a new mapping, a mapping made read-only, a new fd, a moved
 * file position, a new thread, a new name, a forked child), appends what
 * it changed to the record and prints "changed". The region at
 * UNTOUCHED_AT and the heap block's other pages never change after
 * "ready". Record lines: `NAME VALUE...`, addresses in hex.
 * Build: gcc -g -O1 -pthread -o diffvictim diffvictim.c */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096UL
/* Fixed addresses far apart, so that no mapping merges with another. */
#define UNTOUCHED_AT ((void *)0x200000000000UL)
#define UNTOUCHED_PAGES 16
#define NEW_AT ((void *)0x210000000000UL)
#define NEW_PAGES 3
#define PROT_AT ((void *)0x220000000000UL)
#define HEAP_BYTES (64 * 1024)
#define HEAP_WRITE_OFFSET (5 * PAGE + 123)

static const char *record_path;
static volatile sig_atomic_t go;
static volatile long thread_tid;

static void die(const char *what) { perror(what); exit(1); }

/* Appends one line to the record: open, write, close (no stdio buffer on
 * the heap, no descriptor left open). */
static void record(const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int fd = open(record_path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, line, n) != n) die("record");
    close(fd);
}

static void on_usr1(int sig) { (void)sig; go = 1; }

static void *sleeper(void *arg) {
    (void)arg;
    thread_tid = syscall(SYS_gettid);
    for (;;) pause();
    return NULL;
}

static void *map_at(void *at, size_t pages, int prot) {
    void *p = mmap(at, pages * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != at) die("mmap");
    return p;
}

static void fill(char *p, size_t len, const char *marker) {
    size_t m = strlen(marker);
    for (size_t i = 0; i + m <= len; i += m) memcpy(p + i, marker, m);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: diffvictim RECORD FILE\n"); return 2; }
    record_path = argv[1];
    char *heap = malloc(HEAP_BYTES);
    if (!heap) die("malloc");
    fill(heap, HEAP_BYTES, "HEAP_BLOCK_A ");
    char *untouched = map_at(UNTOUCHED_AT, UNTOUCHED_PAGES, PROT_READ | PROT_WRITE);
    fill(untouched, UNTOUCHED_PAGES * PAGE, "UNTOUCHED_7788 ");
    char *prot = map_at(PROT_AT, 1, PROT_READ | PROT_WRITE);
    fill(prot, PAGE, "PROT_REGION ");
    /* The file: open, read 5 bytes (position 5). */
    int file = open(argv[2], O_RDWR);
    char buf[5];
    if (file < 0 || read(file, buf, sizeof buf) != sizeof buf) die(argv[2]);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    record("heap %#lx %#lx\n", (unsigned long)heap, (unsigned long)heap + HEAP_BYTES);
    record("untouched %#lx %#lx\n", (unsigned long)untouched,
           (unsigned long)untouched + UNTOUCHED_PAGES * PAGE);
    record("file %d %s 5\n", file, argv[2]);
    record("comm diffvictim\n");
    fprintf(stderr, "ready\n");
    while (!go) sigsuspend(&old);

    /* The changes. */
    char *w = heap + HEAP_WRITE_OFFSET;
    memcpy(w, "HEAP_WRITE_B", 12);
    record("heap_write %#lx\n", (unsigned long)w);
    char *fresh = map_at(NEW_AT, NEW_PAGES, PROT_READ | PROT_WRITE);
    fill(fresh, NEW_PAGES * PAGE, "INJECTED_REGION ");
    record("new_mapping %#lx %#lx\n", (unsigned long)fresh, (unsigned long)fresh + NEW_PAGES * PAGE);
    if (mprotect(prot, PAGE, PROT_READ)) die("mprotect");
    record("prot_change %#lx %#lx rw- r--\n", (unsigned long)prot, (unsigned long)prot + PAGE);
    int nfd = open(argv[2], O_RDONLY);
    if (nfd < 0 || lseek(nfd, 7, SEEK_SET) != 7) die("open");
    record("new_fd %d %s 7\n", nfd, argv[2]);
    if (lseek(file, 100, SEEK_SET) != 100) die("lseek");
    record("fd_pos %d 5 100\n", file);
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL)) die("pthread_create");
    while (!thread_tid) usleep(1000);
    record("new_thread %ld\n", thread_tid);
    prctl(PR_SET_NAME, "diffvictim-b");
    record("comm_change diffvictim diffvictim-b\n");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        for (;;) pause();
    }
    record("child %d\n", child);
    record("changed\n");
    fprintf(stderr, "changed\n");
    for (;;) pause();
}
