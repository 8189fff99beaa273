/* SPDX-License-Identifier: MIT */
#include "common/argv.h"

#include <string.h>

#include "common/util.h"

int nul_split(const char *buf, size_t len, size_t max, size_t elem_max, char ***ret, size_t *ret_n)
{
	size_t n = 0, i, start;
	char **v, *s;

	for (i = 0, start = 0; i < len; i++)
		if (buf[i] == '\0' || i == len - 1) {
			size_t l = i - start + (buf[i] != '\0');
			if (l > elem_max)
				return -E2BIG;
			n++;
			start = i + 1;
		}
	if (n > max)
		return -E2BIG;
	v = malloc((n + 1) * sizeof(char *) + len + 1);
	if (!v)
		return -ENOMEM;
	s = (char *)(v + n + 1);
	memcpy(s, buf, len);
	s[len] = '\0';
	for (i = 0; i < n; i++) {
		v[i] = s;
		s += strlen(s) + 1;
	}
	v[n] = NULL;
	*ret = v;
	*ret_n = n;
	return 0;
}
