/* SPDX-License-Identifier: MIT */
/*
 * ocistate: the pure logic of the oci driver, no system calls.
 *
 *   oci_state_parse     what runc's state.json or crun's status file says
 *                       about a container: its init PID and start time,
 *                       root file system, bundle, cgroup directories
 *   oci_state_update    the same file rewritten for the restored init
 *                       (PID, start time; runc: namespace paths), for
 *                       registering the container on the destination
 *   oci_ext_mounts      which mounts of the container (its mountinfo) are
 *                       bind mounts of host paths (the host's mountinfo),
 *                       i.e. external to CRIU, and their host paths
 *
 * Every parser takes untrusted text: a malformed input is -EINVAL, never
 * a crash. Results are malloc'ed; oci_state_free / free() release them.
 */
#ifndef PHAUL_OCISTATE_H
#define PHAUL_OCISTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum oci_runtime { OCI_RUNC, OCI_CRUN };

struct oci_state {
	pid_t pid;	/* the container's init, as the host sees it */
	uint64_t start; /* its start time (/proc/PID/stat field 22) */
	char *rootfs;	/* absolute */
	char *bundle;	/* absolute */
	char **cgroups; /* its cgroup directories, under /sys/fs/cgroup/ */
	size_t nr_cgroups;
};

/* "runc" / "crun" -> enum; -EINVAL for anything else. */
int oci_runtime_parse(const char *name, enum oci_runtime *ret);
const char *oci_runtime_name(enum oci_runtime rt);
/* The state file's name under RUNTIME_ROOT/ID: state.json or status. */
const char *oci_state_file(enum oci_runtime rt);

int oci_state_parse(enum oci_runtime rt, const char *json, struct oci_state *ret);
void oci_state_free(struct oci_state *st);
int oci_state_update(enum oci_runtime rt, const char *json, pid_t pid, uint64_t start, char **ret);
/* The same, and what the destination changed (NULL: nothing else). */
struct oci_state_change {
	const char *rootfs; /* another rootfs (a manager's mount) */
	const char *netns;  /* runc: the network namespace's path */
};
int oci_state_rewrite(enum oci_runtime rt, const char *json, pid_t pid, uint64_t start,
		      const struct oci_state_change *ch, char **ret);

struct oci_mount {
	char *dest;   /* mount point in the container */
	char *source; /* host path bound there */
};

/*
 * Mounts of the container whose file system the host has mounted too and
 * whose root is not inside the container's root file system (@rootfs, the
 * root of the container's "/" mount): the binds CRIU must be told about.
 * Mounts whose root is no path (nsfs: "net:[4026532174]") are none of
 * them. -EINVAL if a line is malformed or no "/" mount has a path root.
 */
int oci_ext_mounts(const char *cont_mountinfo, const char *host_mountinfo, struct oci_mount **ret,
		   size_t *ret_nr);
void oci_mounts_free(struct oci_mount *m, size_t nr);

/* Whether a mount with ID @id is in @mountinfo. */
bool mountinfo_has_id(const char *mountinfo, unsigned int id);

#endif
