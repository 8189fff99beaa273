/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "fault: "
#include "fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

static const char *const fault_points[] = {
	/* source side, in the order a migration reaches them */
	"src.connect", "src.preflight", "src.memforce", "src.round", "src.dump", "src.transfer",
	"src.stop", "src.restart", "src.restore", "src.commit", "src.committed", "src.postcopy",
	"src.pageread", "src.lazymapped", "src.cleanup",
	"src.cowsend",	   /* shared pages named, their data never sent */
	"src.shmskip",	   /* a shared memory object's first page never sent */
	"src.pagecorrupt", /* every zstd page frame goes out with a byte flipped */
	"src.imgcorrupt",  /* every zstd image chunk goes out with a byte flipped */
	/* destination side */
	"dst.handshake", "dst.preflight", "dst.round", "dst.transfer", "dst.restore",
	"dst.restored", "dst.commit", "dst.postcopy", "dst.cleanup", "dst.restart",
	"dst.cpuinfo",	 /* the source's cpuinfo.img is written garbled: CRIU's check fails */
	"dst.fillbreak", /* the connection is broken as the fill after the commit starts */
	/* storage drivers: one per hook (drivers/driver.c), either side */
	"fs.start_migration", "fs.next_iteration", "fs.frozen", "fs.stop_migration",
	"fs.migration_complete", "fs.migration_failed", "fs.target_check", "fs.target_restore",
	"fs.target_restored", "fs.target_cleanup", "fs.target_abort",
	"fs.sync_round", /* sync: before each rsync round, source side */
};

#ifdef PHAUL_FAULT_INJECTION
enum fault_action { FA_NONE, FA_FAIL, FA_DELAY, FA_KILL };

struct armed {
	enum fault_action action;
	unsigned int delay_ms;
};

static struct armed armed[ARRAY_SIZE(fault_points)];

static int point_index(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(fault_points); i++)
		if (strlen(fault_points[i]) == len && !strncmp(fault_points[i], name, len))
			return i;
	return -1;
}

static int parse_one(const char *tok)
{
	const char *colon = strchr(tok, ':');
	size_t len = colon ? (size_t)(colon - tok) : strlen(tok);
	int idx = point_index(tok, len);
	const char *act = colon ? colon + 1 : "fail";
	uint64_t ms;

	if (idx < 0) {
		pr_err("unknown fault point '%.*s'", (int)len, tok);
		return -EINVAL;
	}
	if (!strcmp(act, "fail")) {
		armed[idx].action = FA_FAIL;
	} else if (!strcmp(act, "kill")) {
		armed[idx].action = FA_KILL;
	} else if (!strncmp(act, "delay=", 6) && !parse_u64(act + 6, 0, 3600 * 1000, &ms)) {
		armed[idx].action = FA_DELAY;
		armed[idx].delay_ms = ms;
	} else {
		pr_err("unknown fault action '%s' for %s", act, fault_points[idx]);
		return -EINVAL;
	}
	return 0;
}
#endif

int fault_init(void)
{
#ifdef PHAUL_FAULT_INJECTION
	const char *env = getenv("PHAUL_FAULT");
	_cleanup_free_ char *copy = NULL;
	char *save = NULL;

	if (!env || !*env)
		return 0;
	copy = strdup(env);
	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int r = parse_one(tok);
		if (r < 0)
			return r;
	}
#endif
	return 0;
}

int fault_point(const char *name)
{
#ifdef PHAUL_FAULT_INJECTION
	int idx = point_index(name, strlen(name));
	struct timespec ts;

	if (idx < 0 || armed[idx].action == FA_NONE)
		return 0;
	switch (armed[idx].action) {
	case FA_FAIL: pr_warn("injected failure at %s", name); return -EIO;
	case FA_DELAY:
		pr_warn("injected delay of %u ms at %s", armed[idx].delay_ms, name);
		ts.tv_sec = armed[idx].delay_ms / 1000;
		ts.tv_nsec = (armed[idx].delay_ms % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		return 0;
	case FA_KILL:
		pr_warn("injected SIGKILL at %s", name);
		kill(getpid(), SIGKILL);
		return -EIO;
	default: return 0;
	}
#else
	(void)name;
	return 0;
#endif
}

void fault_list(void)
{
#ifndef PHAUL_FAULT_INJECTION
	/* a release build: PHAUL_FAULT means nothing to it */
	fprintf(stderr, "fault injection is compiled out of this build (make FAULTS=0)\n");
	return;
#endif
	for (size_t i = 0; i < ARRAY_SIZE(fault_points); i++)
		printf("%s\n", fault_points[i]);
}
