/*
 * pyfarm.h - the Python side of mules, farms and locks, in the `uwsgi`
 * module and under the name `mulefarm`: mule_id, in_farm, farm_msg,
 * mule_msg, farm_get_msg, mule_get_msg, lock, unlock, farm_msg_wait and
 * the QueueFull exception. uWSGI's names and return types; where mulefarm
 * differs (no silent loss, no truncation) the docstrings say so.
 */
#ifndef MULEFARM_PYFARM_H
#define MULEFARM_PYFARM_H

#include <Python.h>

#include <stdbool.h>

/* Adds the functions and QueueFull to module <m>. Returns 0 or -1. */
int pyfarm_add(PyObject *m);

/* Waits for the next message for mule <id>: its own queue, the shared
 * mule queue (when <any_mule>) and its farms (when <farms>), up to
 * <timeout_ms> (-1: forever), with the GIL released; runs Python signal
 * handlers when a signal interrupts the wait. Returns a bytes object, None
 * on timeout, or NULL with an exception set. GIL held. */
PyObject *pyfarm_get(int id, bool any_mule, bool with_farms, int timeout_ms);

#endif
