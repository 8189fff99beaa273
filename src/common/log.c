/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_role = "phaul";
static enum log_level log_level = LOG_INFO;
static int log_fd = STDERR_FILENO;
static bool log_journal;

/* systemd sets JOURNAL_STREAM=DEV:INO when stderr is the journal. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("PHAUL_LOG");
	unsigned long long dev, ino;
	struct stat st;

	if (env && !strcmp(env, "journal"))
		return true;
	if (env && !strcmp(env, "plain"))
		return false;
	env = getenv("JOURNAL_STREAM");
	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void log_init(const char *role, enum log_level level)
{
	log_role = role;
	log_level = level;
	log_journal = stderr_is_journal();
}

/* The line's start: a syslog priority for the journal (which keeps its
 * own time stamps), else a UTC time stamp. */
static int log_head(char *line, size_t len, enum log_level lvl)
{
	static const char prio[] = { '3', '4', '6', '7' };
	struct timeval tv;
	struct tm tm;

	if (log_journal)
		return snprintf(line, len, "<%c>", prio[lvl < 0 ? 0 : lvl > 3 ? 3 : lvl]);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	return snprintf(line, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			(long)tv.tv_usec / 1000);
}

void log_set_level(enum log_level level)
{
	log_level = level;
}
enum log_level log_get_level(void)
{
	return log_level;
}
void log_set_fd(int fd)
{
	log_fd = fd;
}

static const char *level_tag(enum log_level lvl)
{
	switch (lvl) {
	case LOG_ERROR: return "error: ";
	case LOG_WARN: return "warning: ";
	default: return "";
	}
}

void log_msg(enum log_level lvl, const char *prefix, const char *fmt, ...)
{
	int saved = errno;
	char line[2048];
	va_list ap;
	int n, h;

	if (lvl > log_level)
		return;
	h = log_head(line, sizeof(line), lvl);
	n = snprintf(line + h, sizeof(line) - h, "%s[%d] %s%s", log_role, (int)getpid(), prefix,
		     level_tag(lvl));
	n = n < 0 || (size_t)(n + h) >= sizeof(line) ? 0 : n + h;
	errno = saved;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(line);
	line[n++] = '\n';
	(void)!write(log_fd, line, n);
	errno = saved;
}
