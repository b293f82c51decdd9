// SPDX-License-Identifier: MIT
//
// link: the connections a dtx process makes and accepts, watched so that
// a failure is reported, not waited out. nng dials in the background and
// keeps quiet about why an attempt failed: a REQ request sent while every
// attempt fails its TLS handshake simply waits for its timeout, and a
// listener that refuses a handshake says nothing at all. Here a dtxi_link
// is one dialer of a REQ socket (tls+tcp://, tcp:// or ipc://) with a
// configuration of its own, and a dtxi_watch is a thread that, while a
// request waits on a link that is down, reads the dialer's error counters
// (nng's statistics: the only place nng 1.5.2 keeps them), works out what
// a failed handshake means (tls.h) and tells the link's owner, which fails
// what waits with that reason at once. The watch also reads the counters of
// the listeners made with dtxi_listen() and logs refused handshakes. nng
// 1.5.2 does not say which peer a refused handshake came from; the log
// line says so.
//
// Lock order: dtxi_watch.mtx is a leaf. It is never held while diagnosing,
// calling an owner or calling into nng.

#ifndef DTX_LINK_H
#define DTX_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "tls.h"

typedef struct dtxi_watch dtxi_watch;
typedef struct dtxi_link  dtxi_link;

// A watch for the links and listeners of one owner. Its thread starts when
// first needed. While a request waits on a link that is down, the link is
// looked at every period_ms (0: 50): a TLS failure is reported within
// about that. Errors: DTX_ENOMEM.
int dtxi_watch_open(dtxi_watch **wp, int period_ms);

// Stops the thread and forgets the listeners. Every link must have been
// closed. Accepts NULL.
void dtxi_watch_close(dtxi_watch *w);

// Called on the watch's thread when the link's attempts fail in a way that
// retrying will not fix (a TLS handshake refused by either side, a TLS
// peer on a plain URL or the reverse): the owner fails what waits on the
// link (abort its aios with NNG_EPEERAUTH; dtxi_link_err then gives the
// reason). Must not block and must not close the link.
typedef void (*dtxi_link_fail_fn)(void *arg);

// Called on an nng thread as a connection of the link comes (up) or goes
// (a peer that died or closed it). Must not block and must not close the
// link.
typedef void (*dtxi_link_pipe_fn)(void *arg, bool up);

typedef struct dtxi_link_opts {
	const char       *url;
	const dtxi_tls   *tls;  // required for a TLS URL, refused for others
	const char       *peer; // the far end in messages: "the coordinator"
	const char       *hint; // which CA that peer accepts (tls.h), or NULL
	dtxi_link_fail_fn fail;
	dtxi_link_pipe_fn pipe; // or NULL
	void             *arg;  // of both
} dtxi_link_opts;

// Dials o->url on s in the background, as nng_dial with NNG_FLAG_NONBLOCK
// does, watched by w. The link takes s's pipe notifications. Errors:
// DTX_EINVAL (an address nng cannot use, TLS settings missing or given for
// a plain URL; why says which), DTX_ENOMEM, DTX_ETRANSPORT. why has room
// for cap bytes.
int dtxi_link_open(dtxi_link **lp, dtxi_watch *w, nng_socket s,
    const dtxi_link_opts *o, char *why, size_t cap);

// Forgets the link; waits if the watch is using it. Call it after closing
// the socket (its pipe notifications name the link). Accepts NULL.
void dtxi_link_close(dtxi_link *l);

// Before a request is sent on the link: 0, or DTX_EAUTH with why (cap
// bytes) while the link is known to fail (the request would only wait).
// While the link is down, the watch checks it until it is up or fails.
// Thread-safe; never blocks on the network.
int dtxi_link_check(dtxi_link *l, char *why, size_t cap);

// True while the link is known to fail. For an owner that has just handed
// a request to nng: the watch may have failed the link between
// dtxi_link_check and then, when aborting found nothing to abort, and the
// owner aborts the request itself. Thread-safe.
bool dtxi_link_failing(dtxi_link *l);

// True while the link has a connection (an nng pipe). Thread-safe.
bool dtxi_link_up(dtxi_link *l);

// Maps the nng result rv of a request on the link to dtx's, with why (cap
// bytes): the link's failure when the request was aborted for it
// (NNG_EPEERAUTH) or timed out while it lasts, else "what: <nng's words>"
// and dtxi_transport_err's code. Thread-safe.
int dtxi_link_err(
    dtxi_link *l, int rv, const char *what, char *why, size_t cap);

// TLS handshakes refused so far by the listeners of w, as counted at the
// watch's last look (every 2 s). Thread-safe.
uint64_t dtxi_watch_refused(dtxi_watch *w);

// Listens on url on s, watched by w: with tls for a TLS URL (required
// then, refused otherwise; peers must present a certificate signed by its
// CA), an ipc:// socket file with permissions ipc_mode when not 0. Refused
// handshakes are logged, naming what (e.g. "dtxd client listener").
// Errors: DTX_EINVAL (with why), DTX_ETRANSPORT (e.g. the address is in
// use; why says so), DTX_ENOMEM.
int dtxi_listen(dtxi_watch *w, nng_socket s, const char *url,
    const dtxi_tls *tls, int ipc_mode, const char *what, char *why,
    size_t cap);

#endif // DTX_LINK_H
