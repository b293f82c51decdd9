// SPDX-License-Identifier: MIT
//
// status_page: status_page.html, compiled into dtxd as bytes (CMake
// generates the array at configure time from the file), so that dtxd
// serves its page with nothing to install beside it.

#ifndef DTXD_STATUS_PAGE_H
#define DTXD_STATUS_PAGE_H

#include <stddef.h>

extern const unsigned char dtxd_status_page[];
extern const size_t        dtxd_status_page_len;

#endif // DTXD_STATUS_PAGE_H
