/*
 * dirtier: dirty a lab guest's memory at a chosen, steady rate.
 *
 * Why this exists: live-migration tests need a guest whose dirty rate is
 * known. QEMU sends an all-zero page as a tiny marker, and libvirt's
 * page-sampling dirty-rate calculation hashes page contents, so a loop that
 * rewrites zeros (or the same bytes) costs the migration nothing and reads
 * as 0 MiB/s. This program therefore stamps a fresh, non-zero 64-bit value
 * into every page of its buffer, sweeping the buffer at the requested rate.
 *
 * Settings come from the kernel command line (the lab writes them into the
 * libvirt domain's <cmdline>), so one initramfs serves every guest:
 *   kvmplace.dirty_mibps=N   pages rewritten per second, in MiB/s (0: none)
 *   kvmplace.buffer_mib=N    size of the buffer, filled once with non-zero
 *                            data so a migration really has to move it
 *   kvmplace.fill=1          also fill (once) what memory is still free with
 *                            non-zero data, so that nearly all of the guest's
 *                            RAM crosses the wire, as in a long-running guest
 *                            whose page cache has filled it (a fresh guest's
 *                            free pages are zero, which QEMU sends as tiny
 *                            markers); off by default
 * Command-line arguments (same names without the prefix) override them.
 *
 * Built by the lab with `gcc -static -O2`; needs only libc.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define TICK_NS 5000000L /* pace in 5 ms steps: smooth enough for 1 s samples */

static long read_setting(const char *cmdline, const char *key, long fallback)
{
	const char *p = cmdline;
	size_t n = strlen(key);

	while ((p = strstr(p, key)) != NULL) {
		if ((p == cmdline || p[-1] == ' ') && p[n] == '=')
			return strtol(p + n + 1, NULL, 10);
		p += n;
	}
	return fallback;
}

/*
 * MemAvailable in MiB, from /proc/meminfo (0 if unreadable): free memory
 * less the zones' watermarks, which are large here (transparent huge pages
 * raise min_free_kbytes to a few % of RAM), so MemFree would overcommit.
 */
static long mem_available_mib(void)
{
	char line[256];
	long kib = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib / 1024;
}

/*
 * Fill free memory with non-zero data that is never touched again, leaving
 * a margin for the kernel (the OOM killer must not pick the dirtier).
 */
static long fill_free_memory(void)
{
	long margin = 8, chunk = 4, filled = 0;

	for (;;) {
		unsigned char *p;

		if (mem_available_mib() < margin + chunk)
			break;
		p = mmap(NULL, chunk << 20, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED)
			break;
		memset(p, 0x5c, chunk << 20);
		filled += chunk;
	}
	return filled;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char cmdline[4096] = "";
	FILE *f = fopen("/proc/cmdline", "r");
	long rate_mibps, buffer_mib, fill, filled = 0;
	size_t pages, next = 0;
	uint64_t stamp = 1;
	unsigned char *buf;
	double start, done = 0;
	int i;

	if (f) {
		if (!fgets(cmdline, sizeof(cmdline), f))
			cmdline[0] = '\0';
		fclose(f);
	}
	rate_mibps = read_setting(cmdline, "kvmplace.dirty_mibps", 0);
	buffer_mib = read_setting(cmdline, "kvmplace.buffer_mib", 64);
	fill = read_setting(cmdline, "kvmplace.fill", 0);
	for (i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "dirty_mibps=", 12))
			rate_mibps = atol(argv[i] + 12);
		else if (!strncmp(argv[i], "buffer_mib=", 11))
			buffer_mib = atol(argv[i] + 11);
		else if (!strncmp(argv[i], "fill=", 5))
			fill = atol(argv[i] + 5);
	}
	if (buffer_mib <= 0)
		buffer_mib = 1;
	pages = (size_t)buffer_mib * (1024 * 1024 / PAGE);
	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED) {
		perror("dirtier: mmap");
		return 1;
	}
	/* Fill every page with non-zero data once: it must cross the wire. */
	for (size_t p = 0; p < pages; p++)
		memset(buf + p * PAGE, 0xa5, PAGE);
	if (fill > 0)
		filled = fill_free_memory();
	printf("kvmplace-dirtier: buffer_mib=%ld dirty_mibps=%ld filled_mib=%ld\n",
	       buffer_mib, rate_mibps, filled);
	fflush(stdout);
	if (rate_mibps <= 0) {
		for (;;)
			pause();
	}
	/*
	 * Pages owed so far = rate x elapsed time; write whatever is owed each
	 * tick, one stamp per page (one changed word changes the page's hash and
	 * its dirty bit), wrapping round the buffer.
	 */
	start = now();
	for (;;) {
		double owed = (now() - start) * rate_mibps * (1024.0 * 1024.0 / PAGE);
		struct timespec tick = {0, TICK_NS};

		while (done < owed) {
			uint64_t *word = (uint64_t *)(buf + next * PAGE);

			*word = stamp;
			word[PAGE / 16] = stamp ^ 0x5a5a5a5a5a5a5a5aULL;
			if (++next == pages) {
				next = 0;
				stamp++;
			}
			done += 1;
		}
		nanosleep(&tick, NULL);
	}
}
