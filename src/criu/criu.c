/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "criu: "
#include "criu/criu.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"

#define CRIU_MSG_MAX (4u << 20)
#define STR_(x) #x
#define STR(x) STR_(x)

const char *criu_binary(void)
{
	static char found[256];
	static const char *const dirs[] = { "/usr/local/sbin", "/usr/sbin", "/usr/local/bin",
					    "/usr/bin", "/sbin" };
	const char *env = getenv("PHAUL_CRIU");

	if (env && *env)
		return env;
	if (found[0])
		return found;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(found, sizeof(found), "%s/criu", dirs[i]);
		if (access(found, X_OK) == 0)
			return found;
	}
	found[0] = '\0';
	return "criu";
}

/* An executable @name in one of $PATH's directories (CRIU's, inherited). */
static bool in_path(const char *name)
{
	const char *path = getenv("PATH");
	char file[PATH_MAX];

	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && n < sizeof(file) - strlen(name) - 2) {
			snprintf(file, sizeof(file), "%.*s/%s", (int)n, path, name);
			if (access(file, X_OK) == 0)
				return true;
		}
		path += n + (path[n] == ':');
	}
	return false;
}

void criu_pick_network_lock(CriuOpts *o)
{
	if (o->has_network_lock || (in_path("iptables-restore") && in_path("ip6tables-restore")))
		return;
	o->has_network_lock = true;
	o->network_lock = CRIU_NETWORK_LOCK_METHOD__NFTABLES;
}

/* environ plus the @nr strings of @extra (NULL ones skipped), for a
 * CRIU; built before fork */
static char **env_with(char *const *extra, size_t nr)
{
	size_t n = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + nr + 1, sizeof(*env));
	if (!env)
		return NULL;
	memcpy(env, environ, n * sizeof(*env));
	for (size_t i = 0; i < nr; i++)
		if (extra[i])
			env[n++] = extra[i];
	return env;
}

int criu_start(struct criu *c)
{
	int sp[2];
	char fdstr[16];
	char *const extra[] = { CRIU_ENV_NO_BREAKPOINTS,
				CRIU_ENV_SMAPS_PREFETCH,
				CRIU_ENV_FIFO_SHARED_CHECK,
				CRIU_ENV_RESTORE_TCP_LOCK,
				CRIU_ENV_RESTORE_TCP_MSS,
				c->lazy_in_place ? "CRIU_LAZY_NO_DRAIN=1" : NULL,
				c->shmem_env };
	char **env = env_with(extra, ARRAY_SIZE(extra));
	pid_t pid;

	if (!env) {
		pr_err("no memory for CRIU's environment");
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		int r = -errno;
		pr_perror("socketpair for CRIU");
		free(env);
		return r;
	}
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		pr_perror("fork for CRIU");
		close(sp[0]);
		close(sp[1]);
		free(env);
		return r;
	}
	if (pid == 0) {
		/* the child's end must survive exec */
		int fd = dup(sp[1]);
		int devnull = open("/dev/null", O_RDWR);
		if (fd < 0 || devnull < 0)
			_exit(127);
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		if (log_get_level() < LOG_DEBUG)
			dup2(devnull, STDERR_FILENO);
		for (size_t i = 0; i < c->nr_keep_fds; i++)
			fcntl(c->keep_fds[i], F_SETFD, 0);
		if (c->pass_fd >= 0) {
			if (dup2(c->pass_fd, CRIU_PASS_FD) < 0)
				_exit(127);
			fcntl(CRIU_PASS_FD, F_SETFD, 0);
		}
		snprintf(fdstr, sizeof(fdstr), "%d", fd);
		execve(criu_binary(), (char *[]){ "criu", "swrk", fdstr, NULL }, env);
		_exit(127);
	}
	free(env);
	close(sp[1]);
	c->pid = pid;
	c->sk = sp[0];
	return 0;
}

void criu_stop(struct criu *c)
{
	int status;

	if (c->sk >= 0)
		close(c->sk);
	c->sk = -1;
	if (c->pid > 0) {
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(status))
			pr_warn("criu swrk (pid %d) killed by signal %d", c->pid, WTERMSIG(status));
	}
	c->pid = -1;
}

int criu_send(struct criu *c, CriuReq *req)
{
	size_t len = criu_req__get_packed_size(req);
	_cleanup_free_ uint8_t *buf = malloc(len ? len : 1);

	if (!buf)
		return -ENOMEM;
	criu_req__pack(req, buf);
	if (send(c->sk, buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
		pr_perror("cannot send request to CRIU");
		return -EPIPE;
	}
	return 0;
}

static void close_passed_fds(struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)CMSG_DATA(cm);
		for (int i = 0; i < n; i++)
			close(fds[i]);
	}
}

int criu_recv(struct criu *c, CriuResp **ret)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	_cleanup_free_ uint8_t *buf = NULL;
	struct iovec iov;
	struct msghdr mh = { 0 };
	ssize_t len;

	do
		len = recv(c->sk, NULL, 0, MSG_TRUNC | MSG_PEEK);
	while (len < 0 && errno == EINTR);
	if (len <= 0 || len > CRIU_MSG_MAX) {
		pr_err("CRIU closed its RPC socket (see its log)");
		return -EPIPE;
	}
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	iov.iov_base = buf;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	if (recvmsg(c->sk, &mh, MSG_CMSG_CLOEXEC) != len) {
		pr_perror("cannot read CRIU's message");
		return -EIO;
	}
	close_passed_fds(&mh);
	*ret = criu_resp__unpack(NULL, len, buf);
	if (!*ret) {
		pr_err("CRIU sent a message that does not decode");
		return -EPROTO;
	}
	return 0;
}

int criu_notify_reply(struct criu *c, bool success)
{
	CriuReq req = CRIU_REQ__INIT;

	req.type = CRIU_REQ_TYPE__NOTIFY;
	req.has_notify_success = true;
	req.notify_success = success;
	return criu_send(c, &req);
}

int criu_begin(struct criu *c, CriuReq *req)
{
	int r = criu_start(c);

	if (r < 0)
		return r;
	r = criu_send(c, req);
	if (r < 0)
		criu_stop(c);
	return r;
}

/*
 * Start a request that answers with one response and no notifications.
 * CRIU 4.1.1's RPC needs the images directory as an fd (it readlink()s
 * the /proc/PID/fd/N path it makes of it), so @dir is passed that way,
 * and it stays open until CRIU has answered (call_finish).
 */
static int call_start(struct criu_call *k, CriuReq *req, const char *dir)
{
	int r;

	if (dir) {
		k->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (k->dfd < 0) {
			pr_perror("cannot open %s", dir);
			return -errno;
		}
		req->opts->images_dir_fd = k->dfd;
	}
	r = criu_begin(&k->c, req);
	if (r < 0)
		criu_call_end(k);
	return r;
}

static void call_reap(struct criu_call *k)
{
	criu_stop(&k->c);
	if (k->dfd >= 0)
		close(k->dfd);
	k->dfd = -1;
}

/* Its answer; CRIU is reaped whatever came. */
static int call_finish(struct criu_call *k, CriuResp **ret)
{
	int r = criu_recv(&k->c, ret);

	call_reap(k);
	return r;
}

/*
 * Nobody waits for the answer (a session refused early): a check or a
 * cpuinfo has nothing to undo, so CRIU is killed rather than waited for,
 * and the session's slot in the daemon frees at once.
 */
void criu_call_end(struct criu_call *k)
{
	k->kept = false;
	if (k->c.pid > 0) {
		if (k->c.sk >= 0)
			close(k->c.sk);
		k->c.sk = -1;
		kill(k->c.pid, SIGKILL);
		while (waitpid(k->c.pid, NULL, 0) < 0 && errno == EINTR)
			;
		k->c.pid = -1;
	}
	call_reap(k);
}

static int criu_oneshot(CriuReq *req, const char *dir, CriuResp **ret)
{
	struct criu_call k = CRIU_CALL_INIT;
	int r = call_start(&k, req, dir);

	return r < 0 ? r : call_finish(&k, ret);
}

/* A kept answer to @k's question, or false. */
static bool kept(const struct ckkey *k, uint8_t **data, size_t *len, const char *what)
{
	long age;

	if (!ckcache_get(k, data, len, &age))
		return false;
	if (!strcmp(what, "criu check"))
		pr_info("criu check passed here %ld s ago: not run again (PHAUL_CRIU_CACHE=0 runs "
			"it every time)",
			age);
	else
		pr_debug("%s: CRIU's answer of %ld s ago", what, age);
	return true;
}

int criu_feature(const char *name)
{
	char *argv[] = { (char *)criu_binary(), "check", "--feature", (char *)name, NULL };
	struct ckkey key;
	uint8_t *none = NULL;
	size_t len;
	bool keyed = ckcache_key(&key, criu_binary(), name, NULL, 0);
	int r;
	pid_t pid;

	if (keyed && kept(&key, &none, &len, name)) {
		free(none);
		return 1;
	}
	r = spawn(argv, -1, -1, -1, &pid);
	if (r < 0)
		return r;
	r = spawn_wait(pid);
	if (r == 0 && keyed)
		ckcache_put(&key, NULL, 0);
	pr_debug("criu check --feature %s: %s", name, r == 0 ? "yes" : "no");
	return r == 0;
}

int criu_version(uint32_t *ret)
{
	CriuReq req = CRIU_REQ__INIT;
	CriuResp *resp = NULL;
	struct ckkey key;
	_cleanup_free_ uint8_t *v = NULL;
	size_t vlen;
	bool keyed = ckcache_key(&key, criu_binary(), "version", NULL, 0);
	int r;

	if (keyed && kept(&key, &v, &vlen, "CRIU's version") && vlen == sizeof(*ret)) {
		memcpy(ret, v, sizeof(*ret));
		return 0;
	}
	req.type = CRIU_REQ_TYPE__VERSION;
	r = criu_oneshot(&req, NULL, &resp);
	if (r < 0) {
		pr_err("cannot run %s: is CRIU installed? (scripts/setup installs it)",
		       criu_binary());
		return r;
	}
	if (!resp->success || !resp->version) {
		criu_resp__free_unpacked(resp, NULL);
		return -ENOTSUP;
	}
	*ret = resp->version->major_number * 10000 + resp->version->minor_number * 100 +
	       (resp->version->has_sublevel ? resp->version->sublevel : 0);
	criu_resp__free_unpacked(resp, NULL);
	if (keyed)
		ckcache_put(&key, ret, sizeof(*ret));
	return 0;
}

/*
 * Error lines CRIU writes on runs that go well; a cause only when
 * nothing else is there. On a host without CAP_SYS_RESOURCE every CRIU
 * says it cannot raise its own RLIMIT_NOFILE, and carries on.
 */
static const char *const harmless[] = {
	"rlimit: Can't setup RLIMIT_NOFILE for self",
};

static bool line_harmless(const char *l, size_t n)
{
	for (size_t i = 0; i < ARRAY_SIZE(harmless); i++)
		if (memmem(l, n, harmless[i], strlen(harmless[i])))
			return true;
	return false;
}

/* The message of an "Error (file:line): message" line, or NULL. */
static const char *error_text(const char *l, size_t n, size_t *len)
{
	const char *e = memmem(l, n, "Error (", 7);
	const char *m = e ? memmem(e, n - (e - l), "): ", 3) : NULL;

	if (!m)
		return NULL;
	*len = n - (m + 3 - l);
	return m + 3;
}

/* "Dumping FAILED.", "Restoring FAILED.", "Pre-dumping FAILED." */
static bool line_is_failed(const char *msg, size_t n)
{
	return n >= 11 && !memcmp(msg + n - 11, "ing FAILED.", 11);
}

struct errline {
	const char *s;
	size_t n;
};

static void append(char *buf, size_t len, const char *sep, const char *s, size_t n)
{
	size_t used = strlen(buf);

	if (used < len)
		snprintf(buf + used, len - used, "%s%.*s", used ? sep : "", (int)n, s);
}

static void log_cause(const char *log, size_t size, char *buf, size_t len)
{
	struct errline first = { 0 }, last[2] = { { 0 } }, any = { 0 }, tail = { 0 },
		       failed = { 0 };
	size_t nr = 0;

	buf[0] = '\0';
	for (const char *l = log, *end = log + size; l < end;) {
		const char *nl = memchr(l, '\n', end - l);
		size_t n = nl ? (size_t)(nl - l) : (size_t)(end - l), mlen;
		const char *msg = error_text(l, n, &mlen);

		if (msg && line_is_failed(msg, mlen)) {
			failed = (struct errline){ msg, mlen };
			break; /* what follows is CRIU cleaning up */
		}
		if (n)
			tail = (struct errline){ l, n };
		if (msg && !any.s)
			any = (struct errline){ msg, mlen };
		if (msg && !line_harmless(msg, mlen)) {
			if (!nr++)
				first = (struct errline){ msg, mlen };
			last[0] = last[1];
			last[1] = (struct errline){ msg, mlen };
		}
		l = nl ? nl + 1 : end;
	}
	if (!nr) { /* only harmless errors, or none: that, else the last line */
		if (!any.s)
			any = failed.s ? failed : tail;
		append(buf, len, "", any.s, any.n);
		return;
	}
	/* the first error (the cause) and the two before the failure */
	append(buf, len, "", first.s, first.n);
	if (nr > 3)
		append(buf, len, "; ", "...", 3);
	for (int i = nr >= 3 ? 0 : 3 - (int)nr; i < 2; i++)
		if (last[i].s != first.s)
			append(buf, len, "; ", last[i].s, last[i].n);
}

/* What an error means when CRIU's own words do not say it. */
static const struct {
	const char *error, *hint;
} hints[] = {
	{ "Can't get rlimit", "the limits of another uid's process need CAP_SYS_RESOURCE, "
			      "or a CRIU with phaul's patch 0012" },
};

void criu_log_cause(const char *log, size_t size, char *buf, size_t len)
{
	log_cause(log, size, buf, len);
	for (size_t i = 0; i < ARRAY_SIZE(hints); i++)
		if (strstr(buf, hints[i].error)) {
			append(buf, len, " ", "(", 1);
			append(buf, len, "", hints[i].hint, strlen(hints[i].hint));
			append(buf, len, "", ")", 1);
			break;
		}
}

void criu_log_error(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *log = NULL;
	struct stat st;
	off_t from;
	ssize_t n;

	snprintf(buf, len, "see %s", path);
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	/* the end of the log: where it failed */
	from = st.st_size > (off_t)CRIU_LOG_SCAN_MAX ? st.st_size - CRIU_LOG_SCAN_MAX : 0;
	log = malloc(CRIU_LOG_SCAN_MAX);
	n = log ? pread(fd, log, CRIU_LOG_SCAN_MAX, from) : -1;
	if (n <= 0)
		return;
	criu_log_cause(log, n, buf, len);
	if (!buf[0])
		snprintf(buf, len, "see %s", path);
}

bool criu_call_pending(const struct criu_call *k)
{
	return k->c.pid > 0 || k->kept;
}

int criu_check_begin(struct criu_call *k, const char *dir)
{
	CriuReq req = CRIU_REQ__INIT;
	CriuOpts opts = CRIU_OPTS__INIT;
	uint8_t *none = NULL;
	size_t len;

	k->keyed = ckcache_key(&k->key, criu_binary(), "check", NULL, 0);
	k->kept = k->keyed && kept(&k->key, &none, &len, "criu check");
	free(none);
	if (k->kept)
		return 0;
	opts.images_dir_fd = -1;
	opts.log_file = "check.log";
	req.type = CRIU_REQ_TYPE__CHECK;
	req.opts = &opts;
	return call_start(k, &req, dir);
}

int criu_check_end(struct criu_call *k, const char *dir, char *why, size_t len)
{
	CriuResp *resp = NULL;
	char path[PATH_MAX];
	int r;

	if (k->kept) {
		k->kept = false;
		return 0;
	}
	r = call_finish(k, &resp);
	if (r < 0) {
		snprintf(why, len, "%s", strerror(-r));
		return r;
	}
	r = resp->success ? 0 : -ENOTSUP;
	criu_resp__free_unpacked(resp, NULL);
	if (r < 0) {
		snprintf(path, sizeof(path), "%s/check.log", dir);
		criu_log_error(path, why, len);
	} else if (k->keyed) {
		ckcache_put(&k->key, NULL, 0);
	}
	return r;
}

int criu_check(const char *dir, char *why, size_t len)
{
	struct criu_call k = CRIU_CALL_INIT;
	int r = criu_check_begin(&k, dir);

	if (r < 0) {
		snprintf(why, len, "%s", strerror(-r));
		return r;
	}
	return criu_check_end(&k, dir, why, len);
}

/*
 * The cpuinfo question's key: a dump's answer is this host's image, a
 * check's is about the image in @dir. Then a kept answer: the dump's
 * image written into @dir.
 */
static void cpuinfo_kept(struct criu_call *k, const char *dir, bool dump)
{
	char path[PATH_MAX];
	_cleanup_free_ char *img = NULL;
	uint8_t *ans = NULL;
	size_t len = 0, alen;
	_cleanup_close_ int fd = -1;

	snprintf(path, sizeof(path), "%s/cpuinfo.img", dir);
	if (!dump && read_file(path, CRIU_CPUINFO_MAX, &img, &len) < 0)
		return;
	k->keyed = ckcache_key(&k->key, criu_binary(), dump ? "cpuinfo-dump" : "cpuinfo-check", img,
			       len);
	if (!k->keyed || !kept(&k->key, &ans, &alen, dump ? "cpuinfo.img" : "the CPU check"))
		return;
	if (dump) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		k->kept = fd >= 0 && alen && write_full(fd, ans, alen) == 0;
	} else {
		k->kept = true;
	}
	free(ans);
}

/* Keep the answer that passed: for a dump, the image CRIU wrote. */
static void cpuinfo_keep(struct criu_call *k, bool dump)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *img = NULL;
	ssize_t n = 0;

	if (!k->keyed)
		return;
	if (dump) {
		fd = openat(k->dfd, "cpuinfo.img", O_RDONLY | O_CLOEXEC);
		img = malloc(CRIU_CPUINFO_MAX);
		n = fd >= 0 && img ? read(fd, img, CRIU_CPUINFO_MAX) : -1;
		if (n <= 0 || n == CRIU_CPUINFO_MAX)
			return;
	}
	ckcache_put(&k->key, img, n);
}

int criu_cpuinfo_begin(struct criu_call *k, const char *dir, bool dump)
{
	CriuReq req = CRIU_REQ__INIT;
	CriuOpts opts = CRIU_OPTS__INIT;

	k->dump = dump;
	cpuinfo_kept(k, dir, dump);
	if (k->kept)
		return 0;
	opts.images_dir_fd = -1;
	opts.log_file = dump ? "cpuinfo-dump.log" : "cpuinfo-check.log";
	req.type = dump ? CRIU_REQ_TYPE__CPUINFO_DUMP : CRIU_REQ_TYPE__CPUINFO_CHECK;
	req.opts = &opts;
	return call_start(k, &req, dir);
}

int criu_cpuinfo_end(struct criu_call *k)
{
	CriuResp *resp = NULL;
	int r;

	if (k->kept) {
		k->kept = false;
		return 0;
	}
	r = criu_recv(&k->c, &resp);
	if (r == 0) {
		r = resp->success ? 0 : -EXDEV;
		criu_resp__free_unpacked(resp, NULL);
	}
	if (r == 0)
		cpuinfo_keep(k, k->dump);
	call_reap(k);
	return r;
}

int criu_cpuinfo(const char *dir, bool dump)
{
	struct criu_call k = CRIU_CALL_INIT;
	int r = criu_cpuinfo_begin(&k, dir, dump);

	return r < 0 ? r : criu_cpuinfo_end(&k);
}

/* fds 100 (page server), 101 (status) and, if @go_fd >= 0, 102 (go) */
static pid_t spawn_lazy_pages(const char *imgdir, const char *workdir, int ps_fd, int status_fd,
			      int go_fd, bool bulk)
{
	char *const extra[] = { "CRIU_LAZY_FAULT_AROUND=" STR(CRIU_FAULT_AROUND),
				go_fd >= 0 ? "CRIU_LAZY_WAIT_FD=" STR(CRIU_LAZY_GO_FD) : NULL,
				bulk ? CRIU_ENV_LAZY_BULK : NULL };
	char **env = env_with(extra, ARRAY_SIZE(extra));
	pid_t pid;

	if (!env)
		return -1;
	pid = fork();
	if (pid != 0) {
		free(env);
		return pid;
	}
	int devnull = open("/dev/null", O_RDWR);
	if (devnull < 0 || dup2(ps_fd, CRIU_PASS_FD) < 0 || dup2(status_fd, CRIU_PASS_FD + 1) < 0 ||
	    (go_fd >= 0 && dup2(go_fd, CRIU_LAZY_GO_FD) < 0))
		_exit(127);
	fcntl(CRIU_PASS_FD, F_SETFD, 0);
	fcntl(CRIU_PASS_FD + 1, F_SETFD, 0);
	if (go_fd >= 0)
		fcntl(CRIU_LAZY_GO_FD, F_SETFD, 0);
	dup2(devnull, STDIN_FILENO);
	dup2(devnull, STDOUT_FILENO);
	if (log_get_level() < LOG_DEBUG)
		dup2(devnull, STDERR_FILENO);
	execle(criu_binary(), "criu", "lazy-pages", "--images-dir", imgdir, "--work-dir", workdir,
	       "--log-file", "lazy-pages.log", "--page-server", "--ps-socket", "100", "--status-fd",
	       "101", log_get_level() >= LOG_DEBUG ? "-v4" : "-v2", (char *)NULL, env);
	_exit(127);
}

int criu_lazy_pages_spawn(const char *imgdir, const char *workdir, int ps_fd, bool bulk,
			  struct criu_lazy *l)
{
	int st[2], go[2] = { -1, -1 };

	if (pipe2(st, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(go, O_CLOEXEC) < 0) {
		int r = -errno;
		close(st[0]);
		close(st[1]);
		return r;
	}
	l->pid = spawn_lazy_pages(imgdir, workdir, ps_fd, st[1], go[0], bulk);
	close(st[1]);
	close(go[0]);
	if (l->pid < 0) {
		int r = -errno;
		l->pid = 0;
		close(st[0]);
		close(go[1]);
		return r;
	}
	l->status = st[0];
	l->go = go[1];
	return 0;
}

void criu_lazy_pages_cancel(struct criu_lazy *l)
{
	int status;

	if (l->go >= 0)
		close(l->go);
	if (l->status >= 0)
		close(l->status);
	if (l->pid > 0) {
		kill(l->pid, SIGKILL);
		while (waitpid(l->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	*l = (struct criu_lazy)CRIU_LAZY_INIT;
}

/* CRIU writes a byte to its status fd once its socket listens */
static int await_listening(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	return poll(&pfd, 1, 10000) == 1 && read(fd, &c, 1) == 1 ? 0 : -EIO;
}

int criu_lazy_pages_go(struct criu_lazy *l)
{
	pid_t pid = l->pid;
	int r;

	r = write(l->go, "g", 1) == 1 ? 0 : -EIO;
	if (r == 0)
		r = await_listening(l->status);
	if (r < 0) {
		pr_warn("criu lazy-pages started ahead did not go on (an unpatched CRIU?)");
		criu_lazy_pages_cancel(l);
		return r;
	}
	close(l->go);
	close(l->status);
	*l = (struct criu_lazy)CRIU_LAZY_INIT;
	l->pid = pid;
	return 0;
}

int criu_lazy_pages_start(const char *imgdir, const char *workdir, int ps_fd, bool bulk, pid_t *ret)
{
	int p[2], status;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = spawn_lazy_pages(imgdir, workdir, ps_fd, p[1], -1, bulk);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -errno;
	}
	if (await_listening(p[0]) == 0) {
		close(p[0]);
		*ret = pid;
		return 0;
	}
	close(p[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	pr_err("criu lazy-pages did not start (see lazy-pages.log)");
	return -EIO;
}

pid_t criu_log_text_failed_pid(const char *log)
{
	for (const char *l = strstr(log, "Error ("); l; l = strstr(l + 1, "Error (")) {
		const char *p = memmem(l, strcspn(l, "\n"), "(pid: ", 6);
		char *end;
		long pid;

		if (!p)
			continue;
		errno = 0;
		pid = strtol(p + 6, &end, 10);
		if (!errno && pid > 0 && pid <= INT_MAX && *end == ')')
			return pid;
	}
	return 0;
}

pid_t criu_log_failed_pid(const char *path)
{
	_cleanup_free_ char *log = NULL;

	if (read_file(path, CRIU_LOG_SCAN_MAX, &log, NULL) < 0)
		return 0;
	return criu_log_text_failed_pid(log);
}
