/* SPDX-License-Identifier: MIT */
/*
 * log: one line per event on stderr (or a file), each with a UTC timestamp,
 * the program's role and pid, a module prefix and a level.
 *
 *   2026-11-25T20:41:07.123Z phaul-serve[812] engine: restoring 3 tasks
 *
 * Under systemd, when stderr is the journal (JOURNAL_STREAM), a line
 * starts with a syslog priority ("<6>phaul-serve[812] ...") instead of
 * the time stamp, which the journal records itself. PHAUL_LOG=journal or
 * PHAUL_LOG=plain forces either form. log_init() decides.
 *
 * A module sets LOG_PREFIX before including this header. pr_perror()
 * appends strerror(errno). Library layers log where they decide, once.
 */
#ifndef PHAUL_LOG_H
#define PHAUL_LOG_H

#include <stdarg.h>

enum log_level { LOG_QUIET = -1, LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

void log_init(const char *role, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Send log lines to @fd instead of stderr (the fd is not closed). */
void log_set_fd(int fd);

void log_msg(enum log_level lvl, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define pr_err(fmt, ...) log_msg(LOG_ERROR, LOG_PREFIX, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) log_msg(LOG_WARN, LOG_PREFIX, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) log_msg(LOG_INFO, LOG_PREFIX, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) log_msg(LOG_DEBUG, LOG_PREFIX, fmt, ##__VA_ARGS__)
#define pr_perror(fmt, ...) log_msg(LOG_ERROR, LOG_PREFIX, fmt ": %m", ##__VA_ARGS__)

#endif
