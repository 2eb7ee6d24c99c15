// SPDX-License-Identifier: GPL-2.0
/*
 * fvp_wait_file [--while-pid PID] SECONDS FILE [ABORT]: waits until FILE exists,
 * looking every 100 ms. Exit 0 once it exists, 1 after SECONDS, 2 as soon as ABORT
 * exists, 3 once process PID is gone (a watcher that ends with what it watches).
 *
 * The guests' shell loops used to look once a second with `sleep 1`: every program
 * started costs an emulated guest with KASAN about 0.3 s of CPU, so a guest waiting at
 * a barrier spent a third of its vCPU starting `sleep`, taken from the replication
 * traffic of the guests it shares the host's cores with. One process per wait instead.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec step = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
	struct timespec now, end;
	const char *prog = argv[0];
	long seconds, pid = 0;
	char *tail;

	if (argc > 2 && !strcmp(argv[1], "--while-pid")) {
		errno = 0;
		pid = strtol(argv[2], &tail, 10);
		if (errno || *tail || pid <= 0) {
			fprintf(stderr, "%s: PID must be a process id, not '%s'\n", prog, argv[2]);
			return 64;
		}
		argc -= 2;
		argv += 2;
	}
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s [--while-pid PID] SECONDS FILE [ABORT]\n", prog);
		return 64;
	}
	errno = 0;
	seconds = strtol(argv[1], &tail, 10);
	if (errno || *tail || seconds < 0 || seconds > 86400) {
		fprintf(stderr, "%s: SECONDS must be 0 to 86400, not '%s'\n", prog, argv[1]);
		return 64;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += seconds;
	for (;;) {
		if (access(argv[2], F_OK) == 0)
			return 0;
		if (argc == 4 && access(argv[3], F_OK) == 0)
			return 2;
		if (pid && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
			return 3;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
			return 1;
		nanosleep(&step, NULL);
	}
}
