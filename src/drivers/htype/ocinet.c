/* SPDX-License-Identifier: MIT */
/*
 * ocinet: a container's veth interfaces and where their outer ends are
 * (name, bridge) on the host, so that the destination's CRIU recreates
 * each pair and attaches it to the same-named bridge (CRIU's external
 * veth[IN]:OUT@BRIDGE).
 *
 * Inside the container's network namespace (a child process that joins
 * it), ethtool tells which interfaces are veths and their peer's ifindex
 * (the "peer_ifindex" statistic); the peer must be in our namespace, as
 * its IFLA_LINK pointing back to the inner ifindex confirms (rtnetlink:
 * /sys may be mounted from another network namespace).
 */
#define LOG_PREFIX "oci: "
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/util.h"
#include "drivers/htype/oci.h"

static int ethtool(int sk, const char *ifname, void *data)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = data;
	return ioctl(sk, SIOCETHTOOL, &ifr);
}

/* The veth peer's ifindex of @ifname, or -1 when it is no veth. */
static int veth_peer(int sk, const char *ifname)
{
	struct ethtool_drvinfo di = { .cmd = ETHTOOL_GDRVINFO };
	_cleanup_free_ struct ethtool_gstrings *gs = NULL;
	_cleanup_free_ struct ethtool_stats *st = NULL;
	int peer = -1;

	if (ethtool(sk, ifname, &di) < 0 || strcmp(di.driver, "veth") || !di.n_stats ||
	    di.n_stats > 4096)
		return -1;
	gs = calloc(1, sizeof(*gs) + di.n_stats * ETH_GSTRING_LEN);
	st = calloc(1, sizeof(*st) + di.n_stats * sizeof(uint64_t));
	if (!gs || !st)
		return -1;
	gs->cmd = ETHTOOL_GSTRINGS;
	gs->string_set = ETH_SS_STATS;
	gs->len = di.n_stats;
	st->cmd = ETHTOOL_GSTATS;
	st->n_stats = di.n_stats;
	if (ethtool(sk, ifname, gs) < 0 || ethtool(sk, ifname, st) < 0)
		return -1;
	for (uint32_t i = 0; i < di.n_stats; i++)
		if (!strncmp((char *)gs->data + i * ETH_GSTRING_LEN, "peer_ifindex",
			     ETH_GSTRING_LEN))
			peer = st->data[i];
	return peer;
}

/* In the child, inside the namespace: "INNER IFINDEX PEER_IFINDEX" lines. */
static void list_veths(int nsfd, FILE *out)
{
	struct if_nameindex *ifs;
	int sk;

	if (setns(nsfd, CLONE_NEWNET) < 0)
		_exit(2);
	sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ifs = sk < 0 ? NULL : if_nameindex();
	if (!ifs)
		_exit(3);
	for (struct if_nameindex *i = ifs; i->if_index; i++) {
		int peer = veth_peer(sk, i->if_name);
		if (peer > 0)
			fprintf(out, "%s %u %d\n", i->if_name, i->if_index, peer);
	}
	fflush(out);
	_exit(0);
}

/* IFLA_LINK (the peer's ifindex) and IFLA_MASTER of our interface @idx,
 * by rtnetlink (sysfs may show another namespace's interfaces). */
static int link_info(int idx, int *link, int *master)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req = { .nh = { .nlmsg_len = sizeof(req),
			  .nlmsg_type = RTM_GETLINK,
			  .nlmsg_flags = NLM_F_REQUEST },
		  .ifi = { .ifi_index = idx } };
	_cleanup_close_ int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	char buf[16384];
	struct nlmsghdr *nh = (struct nlmsghdr *)buf;
	ssize_t n;

	if (sk < 0 || send(sk, &req, sizeof(req), 0) < 0)
		return -errno;
	n = recv(sk, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	if (!NLMSG_OK(nh, (size_t)n) || nh->nlmsg_type != RTM_NEWLINK)
		return -ENOENT;
	*link = *master = 0;
	int len = IFLA_PAYLOAD(nh);
	for (struct rtattr *a = IFLA_RTA(NLMSG_DATA(nh)); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_LINK && RTA_PAYLOAD(a) >= sizeof(int))
			memcpy(link, RTA_DATA(a), sizeof(int));
		if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) >= sizeof(int))
			memcpy(master, RTA_DATA(a), sizeof(int));
	}
	return 0;
}

int oci_link_delete(const char *name)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req = { .nh = { .nlmsg_len = sizeof(req),
			  .nlmsg_type = RTM_DELLINK,
			  .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK } };
	_cleanup_close_ int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	char buf[4096];
	struct nlmsghdr *nh = (struct nlmsghdr *)buf;
	ssize_t n;

	req.ifi.ifi_index = (int)if_nametoindex(name);
	if (req.ifi.ifi_index == 0)
		return 0;
	if (sk < 0 || send(sk, &req, sizeof(req), 0) < 0)
		return -errno;
	n = recv(sk, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	if (NLMSG_OK(nh, (size_t)n) && nh->nlmsg_type == NLMSG_ERROR &&
	    nh->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
		int err = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
		return err == -ENODEV ? 0 : err;
	}
	return -EIO;
}

/* The outer end: our interface @peer whose link is @inner, its bridge. */
static int outer_end(int peer, unsigned int inner, struct oci_veth *v)
{
	char name[IF_NAMESIZE];
	int link, master;

	if (!if_indextoname(peer, name) || link_info(peer, &link, &master) < 0 ||
	    (unsigned int)link != inner)
		return -ENOENT;
	snprintf(v->outer, sizeof(v->outer), "%s", name);
	v->bridge[0] = '\0';
	if (master > 0 && if_indextoname(master, name))
		snprintf(v->bridge, sizeof(v->bridge), "%s", name);
	return 0;
}

int oci_read_veths(const struct drv_ctx *ctx, struct oci_priv *p)
{
	char path[64], inner[IF_NAMESIZE];
	_cleanup_close_ int nsfd = -1;
	unsigned int idx;
	int fds[2], peer, status;
	FILE *in;
	pid_t pid;

	if (!oci_own_ns(p->st.pid, "net"))
		return 0; /* the host's network: nothing of its own to move */
	snprintf(path, sizeof(path), "/proc/%d/ns/net", p->st.pid);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || pipe2(fds, O_CLOEXEC) < 0)
		return drv_fail(ctx, -errno, "network namespace of container %s: %m", p->id);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		list_veths(nsfd, fdopen(fds[1], "w"));
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	while (in && p->nr_veth < OCI_VETH_MAX &&
	       fscanf(in, "%15s %u %d", inner, &idx, &peer) == 3) {
		struct oci_veth *v = &p->veth[p->nr_veth];
		snprintf(v->inner, sizeof(v->inner), "%s", inner);
		if (outer_end(peer, idx, v) < 0)
			return drv_fail(ctx, -ENOTSUP,
					"container %s: the other end of %s is not in "
					"this network namespace",
					p->id, inner);
		pr_info("container %s: veth %s, outer end %s on bridge %s", p->id, inner, v->outer,
			v->bridge[0] ? v->bridge : "(none)");
		p->nr_veth++;
	}
	if (in)
		fclose(in);
	else
		close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return drv_fail(ctx, -EIO, "cannot list the interfaces of container %s", p->id);
	return 0;
}
