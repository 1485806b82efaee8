/* Stop and reload flags set from signal handlers (async-signal-safe: one store each). */
#include "agent/signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t reload;
static int installed;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void on_reload(int sig)
{
    (void)sig;
    reload = 1;
}

void cas_signals_install(void)
{
    struct sigaction sa;
    if (installed)
        return;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a blocking wait returns EINTR, so loops notice the request at once. */
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_reload;
    sigaction(SIGHUP, &sa, NULL);
    installed = 1;
}

int cas_stop_requested(void)
{
    return stop_signal != 0;
}

int cas_stop_signal(void)
{
    return stop_signal;
}

int cas_reload_requested(void)
{
    if (!reload)
        return 0;
    reload = 0;
    return 1;
}

void cas_signals_reset(void)
{
    stop_signal = 0;
    reload = 0;
}
