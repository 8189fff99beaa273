/* SPDX-License-Identifier: MIT */
/*
 * page: the one page size phaul counts memory in. It is x86_64's base page
 * and the unit of CRIU's images (pagemap nr_pages) and of phaul's protocol
 * (PageRun, PageDrop, page requests): a constant, never the runtime
 * sysconf(_SC_PAGESIZE), because both ends must agree on it.
 */
#ifndef PHAUL_PAGE_H
#define PHAUL_PAGE_H

#define PAGE 4096ull

#endif
