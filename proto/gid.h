// SPDX-License-Identifier: MIT
//
// gid: global transaction ids made by dtx (a client or dtxd picks one when
// the caller did not).

#ifndef DTX_GID_H
#define DTX_GID_H

// Writes a fresh gid (32 lowercase hex digits and a NUL) to out, which has
// room for 33 bytes: 12 digits of wall-clock milliseconds, then 20 random
// ones, so gids sort by creation time (to the millisecond).
void dtxi_gid_new(char *out);

#endif // DTX_GID_H
