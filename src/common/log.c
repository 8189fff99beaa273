/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_role = "phaul";
static enum log_level log_level = LOG_INFO;
static int log_fd = STDERR_FILENO;

void log_init(const char *role, enum log_level level)
{
	log_role = role;
	log_level = level;
}

void log_set_level(enum log_level level) { log_level = level; }
enum log_level log_get_level(void) { return log_level; }
void log_set_fd(int fd) { log_fd = fd; }

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
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	if (lvl > log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s%s",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000, log_role,
		     (int)getpid(), prefix, level_tag(lvl));
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	errno = saved;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(line);
	line[n++] = '\n';
	(void)!write(log_fd, line, n);
	errno = saved;
}
