/*
 * The floor under scripts/bench's fragmented cases: writes a pages file
 * into a new file as runs of RUN pages separated by one-page holes, the
 * shape of a core whose mappings have one page in RUN+1 never touched, with
 * nothing else to do (no images to read, no notes). Prints the seconds each
 * way of writing it took:
 *   cfr    one copy_file_range per run (what criu2core does)
 *   pwrite one pread of 1 MiB, then one pwrite per run
 *   whole  one copy_file_range of everything, no holes (what cp does)
 *
 * usage: bench-extents PAGES_FILE OUT_FILE RUN
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096L

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int copy(int in, loff_t from, int out, loff_t to, long len)
{
	while (len > 0) {
		ssize_t n = copy_file_range(in, &from, out, &to, len, 0);
		if (n <= 0)
			return -1;
		len -= n;
	}
	return 0;
}

/* Removes OUT_FILE, flushes and waits for the filesystem to settle. */
static void settle(const char *path)
{
	unlink(path);
	sync();
	sleep(1);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s PAGES_FILE OUT_FILE RUN\n", argv[0]);
		return 2;
	}
	int in = open(argv[1], O_RDONLY);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0) {
		perror(argv[1]);
		return 1;
	}
	long size = st.st_size, run = atol(argv[3]) * PAGE;
	if (run <= 0 || run > (1L << 20)) {
		fprintf(stderr, "RUN must be 1 to 256 pages\n");
		return 2;
	}
	/* About a MiB of whole runs per read. */
	long chunk = (1L << 20) / run * run;
	char *buf = malloc(chunk);
	const char *ways[] = { "cfr", "pwrite", "whole" };
	for (int way = 0; way < 3; way++) {
		settle(argv[2]);
		int out = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (out < 0) {
			perror(argv[2]);
			return 1;
		}
		double t = now();
		int err = 0;
		long to = 0;
		if (way == 0) {
			for (long from = 0; from < size && !err; from += run, to += run + PAGE)
				err = copy(in, from, out, to, size - from < run ? size - from : run);
		} else if (way == 1) {
			for (long from = 0; from < size && !err; from += chunk) {
				long len = size - from < chunk ? size - from : chunk;
				err = pread(in, buf, len, from) != len;
				for (long o = 0; o < len && !err; o += run, to += run + PAGE) {
					long n = len - o < run ? len - o : run;
					err = pwrite(out, buf + o, n, to) != n;
				}
			}
		} else {
			err = copy(in, 0, out, 0, size);
		}
		if (err) {
			perror(ways[way]);
			return 1;
		}
		printf("%s %.3f\n", ways[way], now() - t);
		close(out);
	}
	settle(argv[2]);
	return 0;
}
