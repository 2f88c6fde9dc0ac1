/*
 * usignal.h - uWSGI signals: numbered events (0-255) that the master
 * routes to workers and mules, where a Python handler runs.
 *
 * uwsgi.register_signal(num, who, fn) records the target in a table shared
 * by every process and the handler in the registering process (apps
 * register at import, in the master, so every child inherits the
 * handler). uwsgi.signal(num) from any process asks the master to route
 * it; uwsgi.add_timer(num, seconds) makes the master raise it every
 * <seconds>. Targets, as in uWSGI: "worker" (the first live worker),
 * "workers" and "active-workers" (all), "workerN", "mule" (the first live
 * mule), "mules", "muleN"; "" means "worker".
 *
 * Delivery: each worker and mule slot has a datagram socketpair; a thread
 * in the child reads signal numbers and runs the handler with the GIL, so
 * a handler runs whatever the process is doing.
 */
#ifndef MULEFARM_USIGNAL_H
#define MULEFARM_USIGNAL_H

#include <Python.h>

#include <stdint.h>
#include <sys/types.h>

/* Master, before any fork. Returns 0 or -1 (errno). */
int usignal_setup(int nworkers, int nmules);

/* The fd the master polls for requests from children. */
int usignal_master_fd(void);

/* Master: handles pending requests (route a signal, add a timer). <pids>
 * tell which slots are alive: worker i at [i-1], mule k at
 * [nworkers + k - 1]; 0 when not running. */
void usignal_master_read(const pid_t *pids);

/* Master: raises due timers; returns ms until the next (-1: none). */
int usignal_timers(const pid_t *pids, int64_t now_ms);

/* Child: starts the thread delivering to worker <id> (is_mule false) or
 * mule <id>. GIL held. */
void usignal_child_start(bool is_mule, int id);

/* Adds register_signal, signal, signal_registered and add_timer to <m>. */
int usignal_add_functions(PyObject *m);

#endif
