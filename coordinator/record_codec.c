// SPDX-License-Identifier: MIT
//
// record_codec: TxRecord and BranchSpec to and from bytes (see
// record_codec.h), through the nanopb helpers the wire codec lends
// (codec_pb.h), so that TxInfo and BranchSpec are mapped in one place.

#include "record_codec.h"

#include <pb_decode.h>
#include <pb_encode.h>

#include "codec_pb.h"

int
dtxd_record_decode(dtxd_record *r, const uint8_t *buf, size_t len)
{
	dtxp_TxRecord m;
	dtxi_pb_dctx  c;
	pb_istream_t  s;
	int           rv;

	if (r == NULL || (buf == NULL && len > 0)) {
		return DTX_EINVAL;
	}
	// TxRecord.info is not in a oneof, so nothing wipes these callbacks
	// and they can be set before decoding.
	dtxi_pb_dctx_init(&c, buf, len, SIZE_MAX);
	dtxi_pb_install_results(&c, &m.info);
	s = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&s, &dtxp_TxRecord_msg, &m)) {
		return dtxi_pb_decode_failed(&c, &s, "record", NULL);
	}
	if (m.version == 0) {
		return DTX_EPROTO;
	}
	if (m.version > DTX_PROTOCOL_VERSION) {
		return DTX_EVERSION;
	}
	memset(r->done, 0, sizeof(r->done));
	if (m.has_info) {
		rv = dtxi_pb_txinfo_from(&m.info, &c, &r->info, c.why);
		if (rv != 0) {
			return rv;
		}
		for (unsigned i = 0; i < m.info.branches_count; i++) {
			r->done[i] = m.info.branches[i].done;
		}
	} else {
		memset(&r->info, 0, sizeof(r->info));
	}
	r->timeout_ms      = m.timeout_ms;
	r->call_timeout_ms = m.call_timeout_ms;
	r->retries         = m.retries;
	if ((rv = dtxi_pb_ms_from(
	         m.deadline_ms, &r->deadline_ms, "deadline_ms", c.why)) != 0) {
		return rv;
	}
	r->content_hash = m.content_hash;
	r->cursor       = m.cursor;
	r->wait         = m.wait;
	return 0;
}

int
dtxd_spec_decode(dtxi_branch_spec *sp, const uint8_t *buf, size_t len)
{
	dtxp_BranchSpec m;
	dtxi_pb_dctx    c;
	pb_istream_t    s;

	if (sp == NULL || (buf == NULL && len > 0)) {
		return DTX_EINVAL;
	}
	dtxi_pb_dctx_init(&c, buf, len, SIZE_MAX);
	dtxi_pb_reset_slots(&c, DTXI_SLOT_SPEC, 1);
	dtxi_pb_install_payload(&m.payload, &c.slots[0]);
	s = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&s, &dtxp_BranchSpec_msg, &m)) {
		return dtxi_pb_decode_failed(&c, &s, "spec", NULL);
	}
	COPY_STR(sp->endpoint, m.endpoint);
	COPY_STR(sp->method, m.method);
	sp->payload    = c.slots[0].bytes;
	sp->same_group = m.same_group;
	return 0;
}

int
dtxd_record_encode(const dtxd_record *r, uint8_t *buf, size_t cap, size_t *len)
{
	dtxp_TxRecord m;
	int           rv;

	if (r == NULL || len == NULL || r->deadline_ms < 0) {
		return DTX_EINVAL;
	}
	memset(&m, 0, sizeof(m));
	m.version  = DTX_PROTOCOL_VERSION;
	m.has_info = true;
	if ((rv = dtxi_pb_txinfo_to(&r->info, &m.info)) != 0) {
		return rv;
	}
	for (unsigned i = 0; i < r->info.nbranches; i++) {
		m.info.branches[i].done = r->done[i];
	}
	m.timeout_ms      = r->timeout_ms;
	m.call_timeout_ms = r->call_timeout_ms;
	m.retries         = r->retries;
	m.deadline_ms     = (uint64_t)r->deadline_ms;
	m.content_hash    = r->content_hash;
	m.cursor          = r->cursor;
	m.wait            = r->wait;
	return dtxi_pb_encode(&dtxp_TxRecord_msg, &m, buf, cap, len);
}

int
dtxd_spec_encode(
    const dtxi_branch_spec *sp, uint8_t *buf, size_t cap, size_t *len)
{
	dtxp_BranchSpec m;
	int             rv;

	if (sp == NULL || len == NULL) {
		return DTX_EINVAL;
	}
	memset(&m, 0, sizeof(m));
	if ((rv = dtxi_pb_spec_to(sp, &m)) != 0) {
		return rv;
	}
	return dtxi_pb_encode(&dtxp_BranchSpec_msg, &m, buf, cap, len);
}
