// SPDX-License-Identifier: MIT
//
// clock: the two clocks dtx reads. Deadlines on the wire are wall-clock
// milliseconds; intervals measured inside one process use the monotonic
// clock.

#ifndef DTX_CLOCK_H
#define DTX_CLOCK_H

#include <stdint.h>

// Wall clock, ms since the epoch (what deadlines on the wire use).
int64_t dtxi_now_ms(void);

// Monotonic clock, ms.
int64_t dtxi_mono_ms(void);

#endif // DTX_CLOCK_H
