/*
 * wsgi_input.h - wsgi.input: a file-like reader that streams the request
 * body from the connection (read, readline, readlines, iteration).
 * Python thread, GIL held; reads release the GIL while they wait.
 */
#ifndef MULEFARM_WSGI_INPUT_H
#define MULEFARM_WSGI_INPUT_H

#include <Python.h>

#include "mulefarm/conn.h"

/* Readies the type. Master, before fork. Returns 0 or -1. */
int wsgi_input_setup(void);

/* A new reader over the body of the request on <c>. */
PyObject *wsgi_input_new(struct conn *c);

/* Ends the request: later reads raise. Returns the status the response
 * should carry if a read failed before it was sent (408 stalled client,
 * 400 malformed chunking, 413 over --limit-post), or 0. */
int wsgi_input_detach(PyObject *input);

#endif
