/* SPDX-License-Identifier: MIT */
/*
 * criuconf: CRIU options as a CRIU configuration file, for a restore
 * that a container manager execs itself (`lxc-checkpoint -r` runs
 * `criu restore` with its own command line; CRIU_CONFIG_FILE adds ours).
 *
 * criuconf_render() writes the options of @o that such a restore must
 * carry (lazy pages, work directory, network lock, TCP repair, externals,
 * external mount maps, log level) plus @action_script, one "option value"
 * per line. What the manager passes itself is left out: the images
 * directory, root, log file, notify scripts. An option that cannot be
 * carried by a file (an inherited fd) is -ENOTSUP; a value that the file
 * format cannot hold (blank, quote, '#', '\', control characters) is
 * -EINVAL. @work_dir names o->work_dir_fd (NULL when it is not set).
 */
#ifndef PHAUL_CRIUCONF_H
#define PHAUL_CRIUCONF_H

#include "criu-rpc.pb-c.h"

int criuconf_render(const CriuOpts *o, const char *work_dir, const char *action_script, char **ret);

#endif
