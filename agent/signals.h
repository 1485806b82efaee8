/* Process-wide stop and reload requests: SIGTERM / SIGINT ask the running command to stop
 * cleanly (downloads keep what resume needs, a running program's process group is ended), SIGHUP
 * asks the service to reload its configuration. Handlers only set flags; the work loops read
 * them. */
#ifndef CAS_AGENT_SIGNALS_H
#define CAS_AGENT_SIGNALS_H

/* Install the handlers (idempotent). Commands that do not install them keep the default
 * actions, so a plain command is still ended by SIGTERM at once. */
void cas_signals_install(void);

/* Nonzero once SIGTERM or SIGINT arrived (after cas_signals_install). */
int cas_stop_requested(void);
/* The signal that asked to stop (SIGTERM / SIGINT), 0 if none. */
int cas_stop_signal(void);

/* Nonzero once if SIGHUP arrived since the last call (the request is consumed). */
int cas_reload_requested(void);

/* For tests and for a service pass that starts over: forget a stop request. */
void cas_signals_reset(void);

#endif
