// SPDX-License-Identifier: MIT
//
// engine: the mode switch over the two pure engines (see engine.h). It sits
// above both, so neither engine knows the other or the switch.

#include "engine.h"

#include "engine_2pc.h"
#include "engine_saga.h"

void
dtxd_engine_handle(dtxd_txcore *tx, const dtxd_policy *p, const dtxd_event *ev,
    dtxd_actions *out)
{
	switch (tx->mode) {
	case DTX_2PC:
		dtxd_2pc_handle(tx, p, ev, out);
		break;
	case DTX_SAGA:
		dtxd_saga_handle(tx, p, ev, out);
		break;
	default:
		// The loop validates the mode before a transaction exists; an
		// unknown one does nothing rather than guess.
		dtxd_actions_reset(out);
		dtxd_tx_update_wake(tx);
		break;
	}
}
