// SPDX-License-Identifier: MIT
//
// loopback_port: a TCP port on 127.0.0.1 for a listener another process
// will open (tests, dtx-bench's child processes).

#ifndef DTX_LOOPBACK_PORT_H
#define DTX_LOOPBACK_PORT_H

// Returns a port that was free on 127.0.0.1 a moment ago and that this
// process has not handed out before, or -1. The port is drawn at random
// below the kernel's ephemeral range (ip_local_port_range starts at 32768
// on Linux), so an outgoing connection cannot take it between this call
// and the listener's bind, and two calls cannot return the same port the
// way two bind(0) calls can once the first socket is closed.
int dtxi_loopback_port(void);

#endif // DTX_LOOPBACK_PORT_H
