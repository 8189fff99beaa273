/* SPDX-License-Identifier: MIT */
/*
 * util: small helpers shared by every layer.
 *
 * Conventions (docs/CODING.md): functions that can fail return 0 or a
 * negative errno code; resources are released with the _cleanup_* scope
 * attributes below; ownership is handed over with TAKE_FD / TAKE_PTR.
 */
#ifndef PHAUL_UTIL_H
#define PHAUL_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p)
{
	free(*(void **)p);
}
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Hand ownership of a pointer / fd to the caller: the variable is reset. */
#define TAKE_PTR(p)                     \
	({                              \
		__typeof__(p) _p = (p); \
		(p) = NULL;             \
		_p;                     \
	})
#define TAKE_FD(fd)             \
	({                      \
		int _fd = (fd); \
		(fd) = -1;      \
		_fd;            \
	})

/* Read exactly @len bytes; -EPIPE on end of file before that. */
int read_full(int fd, void *buf, size_t len);
/* Write all of @len bytes, retrying on EINTR and short writes. */
int write_full(int fd, const void *buf, size_t len);
/* The same at @off (pwrite); -EIO if nothing could be written. */
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* Read a whole small file (at most @max bytes) into a NUL-terminated buffer. */
int read_file(const char *path, size_t max, char **ret, size_t *ret_len);
/* Create @path and its parents with @mode; 0 if it exists already. */
int mkdir_p(const char *path, mode_t mode);
/* Remove @path and everything below it; 0 if it does not exist. */
int rm_rf(const char *path);
/* An executable @name in /usr/local/{s,}bin, /usr/{s,}bin or /{s,}bin. */
bool prog_installed(const char *name);
/* The same, its path in @path; -ENOENT if there is none. */
int prog_path(const char *name, char *path, size_t len);
/* Remove everything below the directory open at @dirfd (kept itself). */
int rm_rf_at(int dirfd);

/* A DIR stream over the directory open at @dirfd, from its start (the fd
 * itself is left alone; closedir() the result). NULL with errno set. */
DIR *opendir_at(int dirfd);

/* Milliseconds of CLOCK_MONOTONIC / CLOCK_REALTIME. */
uint64_t now_ms(void);
uint64_t now_us(void);
uint64_t wall_ms(void);

/* Parse "ADDR:PORT" ("[v6]:PORT" too) into a sockaddr; -EINVAL if malformed. */
struct sockaddr_storage;
int parse_hostport(const char *s, struct sockaddr_storage *ret, unsigned int *ret_len);

/* Parse a decimal unsigned integer in [min, max]. */
/* Whether the process at the other end of the unix socket @fd runs as
 * root (or as us): SO_PEERCRED, as of its connect() or listen(). */
bool sock_peer_is_root(int fd);

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

#endif
