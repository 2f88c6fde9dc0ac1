/*
 * pydbfarm.h - database farms for Python: farm_msg/farm_get_msg on a
 * --db-farm, mulefarm.enqueue, enqueue_many, job, current_job, job_done,
 * job_failed and the QueueUnavailable exception (a QueueFull).
 *
 * Ack semantics of a consuming mule (README.md, "Database farms"): the
 * job it holds is done when the mule asks for the next message or its
 * code returns; failed, with the traceback as last_error, when its code
 * raises; failed with the cause when it dies and the master sees it;
 * released (not counted as an attempt) when it is killed while stopping;
 * left to its lease when the whole instance dies. job_done() and
 * job_failed(reason) settle it earlier.
 */
#ifndef MULEFARM_PYDBFARM_H
#define MULEFARM_PYDBFARM_H

#include <Python.h>

#include <stdbool.h>

/* Adds the functions and QueueUnavailable to module <m> (which already
 * has QueueFull). Returns 0 or -1. */
int pydbfarm_add(PyObject *m);

/* farm_msg() to database farm <farm>: inserts <msg>, retrying an
 * unreachable database for <wait_ms> (-2: --dbqueue-timeout, -1: until it
 * works). Returns True once committed; when the database stayed
 * unreachable, logs why and returns False, or raises QueueUnavailable
 * when <raise>. NULL with an exception on a bad message. GIL held. */
PyObject *pydbfarm_send(const char *farm, const char *msg, Py_ssize_t len, int wait_ms, bool raise);

/* The next message of mule <id>, which consumes from database farms:
 * settles the job it holds (done), then takes from its own queues (when
 * <any_mule>) and local farms, or claims a job, up to <timeout_ms> (-1:
 * forever). Returns bytes, None on timeout, NULL with an exception.
 * Exits the mule when it was asked to stop. GIL held. */
PyObject *pydbfarm_get(int id, bool any_mule, int timeout_ms);

/* Mule code raised (the exception is pending and stays so): fails the
 * held job with the formatted traceback. */
void pydbfarm_mule_raised(void);

/* Mule code returned with <rc> (0: normally): settles the held job. */
void pydbfarm_mule_returned(int rc);

#endif
