/* The privilege-separated transfer (see transfer_broker.c for the design and the protocol). */
#ifndef CAS_TRANSFER_BROKER_H
#define CAS_TRANSFER_BROKER_H

#include "agent/transfer.h"
#include "common/config.h"

/* Fork the transfer process: it loads the TLS files of cfg, enters the sandbox as `user` (NULL:
 * cas-agent, else nobody; as root only) with no writable folder, and says so before any request.
 * Fails — nothing is ever fetched as root — when it cannot enter the sandbox (0x80070525 no
 * account, 0x80070005 the drop did not hold) or does not answer (0xA0CA0105). Logs the sandbox
 * it runs in (DataTransferService.log). */
cas_hr cas_transfer_broker_new(const struct cas_config *cfg, const char *user,
                               struct cas_transfer **out);

/* The parent side over an already connected SOCK_SEQPACKET socket, with no child to reap: for
 * unit tests that play a (hostile) transfer process. Takes ownership of sock. */
cas_hr cas_transfer_broker_wrap(int sock, struct cas_transfer **out);

#endif
