// SPDX-License-Identifier: MIT
//
// clock: the two clocks dtx reads. Deadlines on the wire are wall-clock
// milliseconds; intervals measured inside one process use the monotonic
// clock. And the one sleep that resumes after a signal.

#ifndef DTX_CLOCK_H
#define DTX_CLOCK_H

#include <stdint.h>
#include <time.h>

// Wall clock, ms since the epoch (what deadlines on the wire use).
int64_t dtxi_now_ms(void);

// Monotonic clock, ms.
int64_t dtxi_mono_ms(void);

// Monotonic clock, us (short intervals, such as one write).
int64_t dtxi_mono_us(void);

// The wall-clock time ms from now, as pthread_cond_timedwait takes it.
struct timespec dtxi_realtime_in(uint32_t ms);

// Sleeps ms, all of it even when a signal interrupts.
void dtxi_sleep_ms(uint32_t ms);

#endif // DTX_CLOCK_H
