/* SPDX-License-Identifier: MIT */
/*
 * ocigarp: gratuitous ARP for a container restored here with a network
 * namespace of its own (contract in oci.h, oci_announce).
 *
 * The container keeps its MAC address, so its peers' ARP caches stay
 * right; what is stale after a migration is every bridge's and switch's
 * idea of where that MAC is, until the container sends something. An
 * unsolicited ARP request (`arping -U`, iputils) for each IPv4 address,
 * sent from inside the container's namespace, moves it at once (and
 * refreshes the peers' neighbour entries). arping takes a second per
 * run, so a detached process does it while the migration finishes.
 */
#define LOG_PREFIX "oci: "
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/util.h"
#include "drivers/htype/oci.h"

#define ARPING "arping"
#define ANNOUNCE_COUNT "2"

/* In the detached child: arping for one address; the child waits. */
static void arping(const char *ifname, const char *addr)
{
	char *const argv[] = { ARPING, "-q",	       "-U",	     "-c", ANNOUNCE_COUNT,
			       "-I",   (char *)ifname, (char *)addr, NULL };
	pid_t pid = fork();

	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
}

/* In the detached child, inside the namespace: every IPv4 address of an
 * interface that is up and not a loopback. It keeps none of the session's
 * files (connections, locks, the reaper's pipe) but stderr, the log.
 * Never returns. */
static void announce_all(int nsfd)
{
	struct ifaddrs *ifa = NULL;
	char addr[INET_ADDRSTRLEN];
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
	    setns(nsfd, CLONE_NEWNET) < 0 || close_range(3, ~0U, 0) < 0 || getifaddrs(&ifa) < 0)
		_exit(1);
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		if (inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, addr,
			      sizeof(addr)))
			arping(i->ifa_name, addr);
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	_exit(0);
}

int oci_announce(const struct drv_ctx *ctx, struct oci_priv *p)
{
	_cleanup_close_ int nsfd = -1;
	char path[64];
	pid_t pid;
	int status;

	if (!p->nr_veth && p->netns_fd <= 0)
		return 0; /* the host's network: the host's business */
	if (!prog_installed(ARPING)) {
		pr_err("%s (iputils-arping) is not installed: container %s is not announced",
		       ARPING, p->id);
		return -ENOENT;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", ctx->tree->root);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	pid = nsfd < 0 ? -1 : fork();
	if (pid < 0) {
		pr_perror("cannot announce container %s", p->id);
		return -errno;
	}
	if (pid == 0) {
		if (fork() == 0) /* the grandchild is init's: nobody waits */
			announce_all(nsfd);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pr_info("container %s: announcing its IPv4 addresses (%s -U)", p->id, ARPING);
	return 0;
}
