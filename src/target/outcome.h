/* SPDX-License-Identifier: MIT */
/*
 * target/outcome: answering an outcome query (a Hello with `resume`).
 */
#ifndef PHAUL_TARGET_OUTCOME_H
#define PHAUL_TARGET_OUTCOME_H

#include <stdint.h>

#include "proto/conn.h"

/* Outcome{state} of session @id (PHAUL_SESSION_ID_LEN bytes) in @workdir,
 * to @c: committed, aborted, pending or unknown. */
int outcome_answer(struct conn *c, const char *workdir, const uint8_t *id);

#endif
