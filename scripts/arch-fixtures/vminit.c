/* /init of the VM that scripts/make-kernel-fixture boots: runs
 * the fixture program under ptrace, as CRIU's parasite-free view of it would
 * be taken on a real machine, stops it at checkpoint_here() with every
 * thread stopped, and writes to the console what the host needs to make the
 * CRIU images (scripts/arch-fixtures/vmcapture.py reads it back):
 *
 *   @@FILE NAME OFFSET TOTAL   then base64 lines: bytes OFFSET.. of file
 *                              NAME, whose length is TOTAL
 *   @@DONE
 *
 * Files: regs/TID/N (the regset of note type N, raw, as PTRACE_GETREGSET
 * gives it), proc/... (the process's /proc files), fds (one line per
 * descriptor), securebits, zero_pfn, pagemap/START and mem/START (each
 * readable mapping's /proc/PID/pagemap entries and bytes; anonymous
 * mappings only in their present pages), state.* (what the program wrote
 * of itself). /capture.conf says what to run: "exe PATH", "arg ARG",
 * "env VAR=VALUE", "bp ADDR" (the local entry of checkpoint_here), "regset N".
 *
 * Build (ppc64le or aarch64): powerpc64le-linux-gnu-gcc -static -O1 -o init vminit.c */
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX 64

/* The instruction that traps to the tracer with SIGTRAP, leaving the pc on
 * it (as both architectures' trap handlers do). */
#if defined(__powerpc64__)
#define TRAP_INSN 0x7fe00008u /* tw 31,0,0 */
#elif defined(__aarch64__)
#define TRAP_INSN 0xd4200000u /* brk #0 */
#else
#error "no trap instruction for this architecture"
#endif

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("@@ERROR ");
    vprintf(fmt, ap);
    printf(" (errno %d)\n", errno);
    fflush(stdout);
    reboot(RB_POWER_OFF);
    _exit(1);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void emit(const char *name, size_t off, size_t total, const unsigned char *p, size_t n) {
    printf("\n@@FILE %s %zu %zu\n", name, off, total);
    char line[80];
    size_t l = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        line[l++] = b64[v >> 18 & 63];
        line[l++] = b64[v >> 12 & 63];
        line[l++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        line[l++] = i + 2 < n ? b64[v & 63] : '=';
        if (l == 76 || i + 3 >= n) {
            line[l] = 0;
            puts(line);
            l = 0;
        }
    }
}

static unsigned char *slurp(const char *path, size_t *n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("open %s", path);
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len)) > 0) {
        len += r;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    *n = len;
    return buf;
}

static void emit_path(const char *name, const char *path) {
    size_t n;
    unsigned char *b = slurp(path, &n);
    emit(name, 0, n, b, n);
    free(b);
}

static void emit_text(const char *name, const char *text) {
    emit(name, 0, strlen(text), (const unsigned char *)text, strlen(text));
}

struct conf {
    char *exe, *argv[MAX], *envp[MAX];
    unsigned long bp;
    unsigned regsets[MAX];
    int nargs, nenv, nregsets;
};

static void read_conf(struct conf *c) {
    FILE *f = fopen("/capture.conf", "r");
    char line[4096];
    if (!f)
        die("no /capture.conf");
    memset(c, 0, sizeof *c);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *v = strchr(line, ' ');
        if (!v)
            continue;
        *v++ = 0;
        if (!strcmp(line, "exe"))
            c->exe = strdup(v);
        else if (!strcmp(line, "arg") && c->nargs < MAX - 1)
            c->argv[c->nargs++] = strdup(v);
        else if (!strcmp(line, "env") && c->nenv < MAX - 1)
            c->envp[c->nenv++] = strdup(v);
        else if (!strcmp(line, "bp"))
            c->bp = strtoul(v, 0, 0);
        else if (!strcmp(line, "regset") && c->nregsets < MAX)
            c->regsets[c->nregsets++] = strtoul(v, 0, 0);
    }
    fclose(f);
    if (!c->exe || !c->bp || !c->nargs)
        die("incomplete /capture.conf");
}

/* Replaces the instruction at addr, returning the old one. */
static uint32_t poke_insn(pid_t pid, unsigned long addr, uint32_t insn) {
    unsigned long word = addr & ~7ul;
    errno = 0;
    long w = ptrace(PTRACE_PEEKTEXT, pid, word, 0);
    if (errno)
        die("peek %lx", word);
    int shift = (addr & 7) * 8; /* little-endian */
    uint32_t old = (uint32_t)((unsigned long)w >> shift);
    unsigned long nw = ((unsigned long)w & ~(0xfffffffful << shift)) | (unsigned long)insn << shift;
    if (ptrace(PTRACE_POKETEXT, pid, word, nw))
        die("poke %lx", word);
    return old;
}

int main(void) {
    struct conf c;
    pid_t tids[MAX];
    int ntids = 0;

    mount("proc", "/proc", "proc", 0, 0);
    setvbuf(stdout, 0, _IOFBF, 1 << 16);
    read_conf(&c);

    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        for (int i = 0; i < 3; i++)
            dup2(fd, i);
        for (int i = 3; i < 1024; i++)
            close(i);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        chdir("/");
        execve(c.exe, c.argv, c.envp);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
        die("exec stop");
    if (ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL))
        die("setoptions");
    uint32_t saved = poke_insn(pid, c.bp, TRAP_INSN);
    tids[ntids++] = pid;
    ptrace(PTRACE_CONT, pid, 0, 0);

    /* Run to the breakpoint, following the threads the program starts. */
    for (;;) {
        pid_t t = waitpid(-1, &st, __WALL);
        if (t < 0)
            die("wait");
        if (WIFEXITED(st) || WIFSIGNALED(st))
            die("thread %d ended (%#x)", t, st);
        int sig = WSTOPSIG(st), known = 0;
        for (int i = 0; i < ntids; i++)
            known |= tids[i] == t;
        if (!known && ntids < MAX)
            tids[ntids++] = t;
        if (st >> 16 == PTRACE_EVENT_CLONE || (sig == SIGSTOP && !known)) {
            ptrace(PTRACE_CONT, t, 0, 0);
            continue;
        }
        if (t == pid && sig == SIGTRAP)
            break;
        ptrace(PTRACE_CONT, t, 0, sig == SIGTRAP ? 0 : sig);
    }
    /* At the breakpoint: put the instruction back; the pc stays there. */
    poke_insn(pid, c.bp, saved);
    /* Stop every other thread where it is (in read(2)). */
    for (int i = 1; i < ntids; i++) {
        syscall(SYS_tgkill, pid, tids[i], SIGSTOP);
        for (;;) {
            if (waitpid(tids[i], &st, __WALL) != tids[i])
                die("wait %d", tids[i]);
            if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP)
                break;
            ptrace(PTRACE_CONT, tids[i], 0, 0);
        }
    }

    char name[256], path[256], buf[1 << 16];
    /* Registers, each regset raw. */
    for (int i = 0; i < ntids; i++)
        for (int r = 0; r < c.nregsets; r++) {
            struct iovec iov = {buf, sizeof buf};
            if (ptrace(PTRACE_GETREGSET, tids[i], c.regsets[r], &iov))
                die("getregset %d %#x", tids[i], c.regsets[r]);
            snprintf(name, sizeof name, "regs/%d/%u", tids[i], c.regsets[r]);
            emit(name, 0, iov.iov_len, (unsigned char *)buf, iov.iov_len);
        }
    /* The process's /proc. */
    const char *files[] = {"status", "limits", "loginuid", "oom_score_adj", "personality", "maps", "smaps", "auxv", "stat"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(name, sizeof name, "proc/%s", files[i]);
        snprintf(path, sizeof path, "/proc/%d/%s", pid, files[i]);
        emit_path(name, path);
    }
    for (int i = 0; i < ntids; i++) {
        snprintf(name, sizeof name, "proc/task/%d/stat", tids[i]);
        snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tids[i]);
        emit_path(name, path);
    }
    snprintf(path, sizeof path, "/proc/%d/cwd", pid);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    buf[n < 0 ? 0 : n] = 0;
    emit_text("proc/cwd", buf);
    /* Descriptors: fd, target, mode, size, inode, pos, flags (octal),
     * pipe size, and the first earlier fd sharing its open file (or -1). */
    {
        char text[1 << 14];
        size_t tl = 0;
        int fds[MAX], nfds = 0;
        snprintf(path, sizeof path, "/proc/%d/fd", pid);
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.' && nfds < MAX)
                fds[nfds++] = atoi(e->d_name);
        if (d)
            closedir(d);
        for (int i = 0; i < nfds; i++)
            for (int j = i + 1; j < nfds; j++)
                if (fds[j] < fds[i]) {
                    int x = fds[i];
                    fds[i] = fds[j];
                    fds[j] = x;
                }
        for (int i = 0; i < nfds; i++) {
            char target[512], info[1024];
            struct stat sb;
            snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fds[i]);
            n = readlink(path, target, sizeof target - 1);
            target[n < 0 ? 0 : n] = 0;
            if (stat(path, &sb))
                die("stat %s", path);
            int pipe_size = -1;
            if (S_ISFIFO(sb.st_mode)) {
                int p = open(path, O_RDONLY | O_NONBLOCK);
                pipe_size = fcntl(p, F_GETPIPE_SZ);
                close(p);
            }
            snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", pid, fds[i]);
            int fi = open(path, O_RDONLY);
            n = read(fi, info, sizeof info - 1);
            close(fi);
            info[n < 0 ? 0 : n] = 0;
            unsigned long pos = 0, flags = 0;
            char *s = strstr(info, "pos:");
            if (s)
                pos = strtoul(s + 4, 0, 10);
            s = strstr(info, "flags:");
            if (s)
                flags = strtoul(s + 6, 0, 8);
            int same = -1;
            for (int j = 0; j < i && same < 0; j++)
                if (syscall(SYS_kcmp, pid, pid, 0 /* KCMP_FILE */, fds[j], fds[i]) == 0)
                    same = fds[j];
            tl += snprintf(text + tl, sizeof text - tl, "%d %s %o %lld %llu %lu %lo %d %d\n", fds[i], target,
                           sb.st_mode, (long long)sb.st_size, (unsigned long long)sb.st_ino, pos, flags,
                           pipe_size, same);
        }
        emit_text("fds", text);
    }
    snprintf(buf, sizeof buf, "%d", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    emit_text("securebits", buf);
    /* The zero page's frame: a page of ours read but never written. */
    {
        long ps = sysconf(_SC_PAGESIZE);
        volatile char *z = mmap(0, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        (void)z[0];
        uint64_t e = 0;
        int pm = open("/proc/self/pagemap", O_RDONLY);
        pread(pm, &e, 8, (unsigned long)z / ps * 8);
        close(pm);
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)(e & ((1ull << 55) - 1)));
        emit_text("zero_pfn", buf);
    }
    /* Each readable mapping: its pagemap, then its bytes (anonymous ones
     * only where present: the rest reads as zeros). */
    {
        long ps = sysconf(_SC_PAGESIZE);
        snprintf(path, sizeof path, "/proc/%d/maps", pid);
        FILE *maps = fopen(path, "r");
        snprintf(path, sizeof path, "/proc/%d/pagemap", pid);
        int pm = open(path, O_RDONLY);
        snprintf(path, sizeof path, "/proc/%d/mem", pid);
        int mem = open(path, O_RDONLY);
        char line[512];
        struct { unsigned long start, end; int file; } m[4 * MAX];
        int nm = 0;
        while (fgets(line, sizeof line, maps) && nm < 4 * MAX) {
            unsigned long s, e;
            char perms[8];
            if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3 || perms[0] != 'r')
                continue;
            m[nm].start = s;
            m[nm].end = e;
            m[nm].file = strchr(line, '/') != 0;
            nm++;
        }
        fclose(maps);
        uint64_t *ents[4 * MAX];
        for (int i = 0; i < nm; i++) {
            size_t np = (m[i].end - m[i].start) / ps;
            ents[i] = malloc(np * 8);
            if (pread(pm, ents[i], np * 8, m[i].start / ps * 8) != (ssize_t)(np * 8))
                die("pagemap %lx", m[i].start);
            snprintf(name, sizeof name, "pagemap/%lx", m[i].start);
            emit(name, 0, np * 8, (unsigned char *)ents[i], np * 8);
        }
        unsigned char *page = malloc(ps);
        for (int i = 0; i < nm; i++) {
            size_t np = (m[i].end - m[i].start) / ps, total = m[i].end - m[i].start;
            snprintf(name, sizeof name, "mem/%lx", m[i].start);
            int any = 0;
            for (size_t p = 0; p < np; p++) {
                if (!m[i].file && !(ents[i][p] & (3ull << 62)))
                    continue;
                if (pread(mem, page, ps, m[i].start + p * ps) != ps)
                    die("mem %lx", m[i].start + p * ps);
                emit(name, p * ps, total, page, ps);
                any = 1;
            }
            if (!any)
                emit(name, 0, total, page, 0);
        }
    }
    /* What the program wrote of itself. */
    emit_path("state.maps", "/out/state.maps");
    emit_path("state.auxv", "/out/state.auxv");
    emit_path("state.stat", "/out/state.stat");
    printf("\n@@DONE\n");
    fflush(stdout);
    kill(pid, SIGKILL);
    reboot(RB_POWER_OFF);
    return 0;
}
