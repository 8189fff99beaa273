/* SPDX-License-Identifier: MIT */
/*
 * lxcconf: what the lxc driver needs from an LXC 5.0 container's config
 * file (LXCPATH/NAME/config, "key = value" lines, '#' comments): its root
 * file system, its network devices, whether it has a console, who its
 * root is on the host when it has a user namespace (lxc.idmap). Pure: used
 * on the source for its own container and on the destination for the
 * config the source sent (untrusted).
 *
 * lxcconf_parse() fills @c from @text; -ENOTSUP for what the driver does
 * not migrate (a rootfs that is not a directory, a network device other
 * than veth/empty/none, more than LXCCONF_NET_MAX devices), -EINVAL for
 * a malformed value (a relative rootfs, an interface name that is not
 * one). Keys it does not know are LXC's business and are ignored.
 */
#ifndef PHAUL_LXCCONF_H
#define PHAUL_LXCCONF_H

#include <stdbool.h>
#include <stddef.h>

#define LXCCONF_NET_MAX 8
#define LXCCONF_MAX (64u * 1024) /* bytes of a config we accept */

enum lxcconf_net_type { LXCNET_UNSET, LXCNET_EMPTY, LXCNET_NONE, LXCNET_VETH };

struct lxcconf_net {
	enum lxcconf_net_type type;
	char link[16]; /* the bridge the outer end joins, "" when none */
	char name[16]; /* the inner name, "" for LXC's ethN */
	char pair[16]; /* the outer name, "" for LXC's random one */
};

struct lxcconf {
	char rootfs[4096]; /* absolute directory */
	bool console;	   /* lxc.console.path is not "none" */
	size_t nr_net;	   /* highest lxc.net.N index + 1 */
	struct lxcconf_net net[LXCCONF_NET_MAX];
	long root_uid; /* the host's ID of its root (lxc.idmap u|g 0 ID N), */
	long root_gid; /* -1 without a user namespace */
	bool apparmor; /* lxc.apparmor.profile is set (LXC's restore passes
			* it to CRIU as --lsm-profile) */
};

int lxcconf_parse(const char *text, struct lxcconf *c);

/*
 * The value of @key in what `lxc-info -c KEY` prints ("KEY = VALUE"), a
 * number >= 0; an empty value is 0 (LXC's default). -EINVAL otherwise.
 */
int lxcconf_info_long(const char *out, const char *key, long *v);
/* The same, a string value (empty when unset) in @buf; -EINVAL if it
 * does not fit. */
int lxcconf_info_str(const char *out, const char *key, char *buf, size_t size);

/*
 * @text (read from the images: untrusted) is CRIU's key of a tty,
 * "tty[RDEV:DEV]" in lower-case hex as CRIU prints it, with nothing
 * around it but a final newline; copied to @buf without it. -EINVAL
 * otherwise (or when it does not fit).
 */
int lxcconf_tty_key(const char *text, char *buf, size_t size);

/*
 * The message of the first ERROR line of an LXC log (`-o FILE -l ERROR`:
 * "lxc-checkpoint NAME TIME ERROR CATEGORY - FILE:FUNC:LINE - MESSAGE"), in
 * @buf (cut to fit); -ENOENT when there is none.
 */
int lxcconf_log_error(const char *log, char *buf, size_t size);

#endif
