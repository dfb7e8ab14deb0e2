/* Takes of a live 32-bit (compat) process what CRIU's dump takes of it, the
 * way CRIU (compel) takes it, for scripts/make-i386-fixture. Build it as a
 * 64-bit program (a 64-bit tracer sees a compat task as CRIU does) and run
 * it as root (page frame numbers tell the zero page from dumped ones).
 *
 * Usage: capture PID OUT_DIR
 *
 * Writes into OUT_DIR:
 *   tids.txt               the threads, the leader first
 *   thread-TID/prstatus    PTRACE_GETREGSET NT_PRSTATUS: the compat
 *                          user_regs_struct (68 bytes)
 *   thread-TID/xstate      PTRACE_GETREGSET NT_X86_XSTATE
 *   thread-TID/fpregs      PTRACE_GETFPREGS (the 512-byte FXSAVE area), which
 *                          compel uses where XSTATE_BV lacks x87 or SSE
 *   thread-TID/tls         PTRACE_GET_THREAD_AREA for GDT slots 12-14 (three
 *                          struct user_desc)
 *   thread-TID/status      /proc/PID/task/TID/status
 *   state.maps, state.auxv, state.stat   the /proc/PID files, as they are
 *   mem/ADDR.bin           the bytes of every readable mapping (ADDR in hex)
 *   dumped.txt             the pages CRIU dumps, one hex address a line: in
 *                          RAM or swap, not file-backed, not the zero page;
 *                          every page of the vDSO, none of vvar
 *   xsave-layout.txt       "BIT OFFSET SIZE" of each XSAVE component XCR0
 *                          enables, from CPUID leaf 0xD as compel reads it:
 *                          where CRIU finds each component in the XSAVE area
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PTRACE_GET_THREAD_AREA
#define PTRACE_GET_THREAD_AREA 25
#endif
#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

#define PAGE 4096UL
#define PME_PRESENT (1ULL << 63)
#define PME_SWAP (1ULL << 62)
#define PME_FILE (1ULL << 61)
#define PME_PFN ((1ULL << 55) - 1)

static const char *out;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "capture: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": %s\n", strerror(errno));
    va_end(ap);
    exit(1);
}

static void put(const char *name, const void *data, size_t len) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", out, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f))
        die("%s", path);
}

/* A whole /proc file (they report no size). */
static char *slurp(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("%s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap)
            buf = realloc(buf, (cap *= 2) + 1);
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0)
            die("%s", path);
        if (r == 0)
            break;
        n += r;
    }
    close(fd);
    buf[n] = 0;
    *len = n;
    return buf;
}

static void copy_proc(const char *from, const char *to) {
    size_t len;
    char *data = slurp(from, &len);
    put(to, data, len);
    free(data);
}

/* The page frame the zero page has: CRIU compares with it (kdat.zero_page_pfn). */
static uint64_t zero_page_pfn(void) {
    volatile char *p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    (void)p[0];
    int fd = open("/proc/self/pagemap", O_RDONLY);
    uint64_t pme;
    if (fd < 0 || pread(fd, &pme, 8, (uintptr_t)p / PAGE * 8) != 8)
        die("/proc/self/pagemap");
    close(fd);
    return pme & PME_PFN;
}

/* Where this CPU puts each enabled XSAVE component (XCR0 from the kernel's
 * software-reserved bytes of the XSAVE area). */
static void xsave_layout(const unsigned char *xstate, size_t len) {
    uint64_t xcr0;
    if (len < 472) {
        errno = EINVAL;
        die("XSAVE area of %zu bytes", len);
    }
    memcpy(&xcr0, xstate + 464, 8);
    char path[4096];
    snprintf(path, sizeof(path), "%s/xsave-layout.txt", out);
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s", path);
    for (unsigned bit = 2; bit < 64; bit++) {
        unsigned size, offset, ecx, edx;
        if (!(xcr0 & (1ULL << bit)))
            continue;
        __cpuid_count(0xd, bit, size, offset, ecx, edx);
        fprintf(f, "%u %u %u\n", bit, offset, size);
    }
    fclose(f);
}

static void capture_thread(pid_t tid) {
    char dir[64], name[96];
    snprintf(dir, sizeof(dir), "thread-%d", tid);
    snprintf(name, sizeof(name), "%s/%s", out, dir);
    if (mkdir(name, 0755) && errno != EEXIST)
        die("%s", name);

    unsigned char regs[27 * 8];
    struct iovec iov = {regs, sizeof(regs)};
    if (ptrace(PTRACE_GETREGSET, tid, NT_PRSTATUS, &iov))
        die("NT_PRSTATUS of %d", tid);
    if (iov.iov_len != 17 * 4) {
        errno = 0;
        die("thread %d is not a compat task (%zu bytes of registers)", tid, iov.iov_len);
    }
    snprintf(name, sizeof(name), "%s/prstatus", dir);
    put(name, regs, iov.iov_len);

    static unsigned char xstate[16384];
    iov = (struct iovec){xstate, sizeof(xstate)};
    if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov))
        die("NT_X86_XSTATE of %d", tid);
    snprintf(name, sizeof(name), "%s/xstate", dir);
    put(name, xstate, iov.iov_len);
    xsave_layout(xstate, iov.iov_len);

    unsigned char fx[512];
    if (ptrace(PTRACE_GETFPREGS, tid, NULL, fx))
        die("PTRACE_GETFPREGS of %d", tid);
    snprintf(name, sizeof(name), "%s/fpregs", dir);
    put(name, fx, sizeof(fx));

    uint32_t tls[3][4];
    for (int i = 0; i < 3; i++)
        if (ptrace(PTRACE_GET_THREAD_AREA, tid, (void *)(long)(12 + i), tls[i]))
            die("PTRACE_GET_THREAD_AREA %d of %d", 12 + i, tid);
    snprintf(name, sizeof(name), "%s/tls", dir);
    put(name, tls, sizeof(tls));

    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/status", tid);
    snprintf(name, sizeof(name), "%s/status", dir);
    copy_proc(path, name);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: capture PID OUT_DIR\n");
        return 2;
    }
    pid_t pid = atoi(argv[1]);
    out = argv[2];
    char path[4096], name[4096];

    /* Stop every thread, as CRIU seizes them. */
    pid_t tids[256];
    int n = 0;
    tids[n++] = pid;
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        die("%s", path);
    for (struct dirent *e; (e = readdir(d));) {
        pid_t t = atoi(e->d_name);
        if (t > 0 && t != pid && n < 256)
            tids[n++] = t;
    }
    closedir(d);
    for (int i = 2; i < n; i++) /* the others in ascending order */
        for (int j = i; j > 1 && tids[j] < tids[j - 1]; j--) {
            pid_t t = tids[j];
            tids[j] = tids[j - 1];
            tids[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        int st;
        if (ptrace(PTRACE_SEIZE, tids[i], NULL, NULL) || ptrace(PTRACE_INTERRUPT, tids[i], NULL, NULL))
            die("seizing %d", tids[i]);
        if (waitpid(tids[i], &st, __WALL) != tids[i])
            die("waiting for %d", tids[i]);
    }

    FILE *f;
    snprintf(path, sizeof(path), "%s/tids.txt", out);
    if (!(f = fopen(path, "w")))
        die("%s", path);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%d\n", tids[i]);
        capture_thread(tids[i]);
    }
    fclose(f);

    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    copy_proc(path, "state.maps");
    snprintf(path, sizeof(path), "/proc/%d/auxv", pid);
    copy_proc(path, "state.auxv");
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    copy_proc(path, "state.stat");

    /* Memory, and the pages CRIU would dump. */
    uint64_t zero_pfn = zero_page_pfn();
    snprintf(name, sizeof(name), "%s/mem", out);
    if (mkdir(name, 0755) && errno != EEXIST)
        die("%s", name);
    snprintf(path, sizeof(path), "/proc/%d/mem", pid);
    int mem = open(path, O_RDONLY);
    snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
    int pagemap = open(path, O_RDONLY);
    snprintf(path, sizeof(path), "%s/dumped.txt", out);
    FILE *dumped = fopen(path, "w");
    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    FILE *maps = fopen(path, "r");
    if (mem < 0 || pagemap < 0 || !dumped || !maps)
        die("opening /proc/%d files", pid);
    char line[4096];
    while (fgets(line, sizeof(line), maps)) {
        uint64_t start, end;
        char perms[8], file[4096] = "";
        if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %4095[^\n]", &start, &end, perms, file) < 3) {
            errno = EINVAL;
            die("maps line %s", line);
        }
        int vdso = !strcmp(file, "[vdso]");
        int vvar = !strncmp(file, "[vvar", 5);
        if (perms[0] != 'r' || vvar)
            continue;
        size_t len = end - start;
        unsigned char *buf = malloc(len);
        uint64_t *pme = malloc(len / PAGE * 8);
        if (pread(mem, buf, len, start) != (ssize_t)len)
            die("reading %" PRIx64 "-%" PRIx64, start, end);
        if (pread(pagemap, pme, len / PAGE * 8, start / PAGE * 8) != (ssize_t)(len / PAGE * 8))
            die("pagemap of %" PRIx64, start);
        snprintf(name, sizeof(name), "mem/%" PRIx64 ".bin", start);
        put(name, buf, len);
        for (size_t i = 0; i < len / PAGE; i++) {
            int in_memory = (pme[i] & (PME_PRESENT | PME_SWAP)) && !(pme[i] & PME_FILE) &&
                            (pme[i] & PME_PFN) != zero_pfn;
            if (vdso || in_memory)
                fprintf(dumped, "%" PRIx64 "\n", start + i * PAGE);
        }
        free(buf);
        free(pme);
    }
    fclose(maps);
    fclose(dumped);

    for (int i = 0; i < n; i++)
        ptrace(PTRACE_DETACH, tids[i], NULL, NULL);
    return 0;
}
