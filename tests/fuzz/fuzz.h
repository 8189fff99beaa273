/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h: what every libFuzzer target here shares. CHECK(x): an
 * invariant of the code under test; a violation is a crash libFuzzer
 * reports (with the input), not a silent pass.
 */
#ifndef PHAUL_FUZZ_H
#define PHAUL_FUZZ_H

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

#endif
