/*
 * wsgi.h - PEP 3333: the environ, start_response, wsgi.input,
 * wsgi.file_wrapper, and response framing over HTTP/1.1.
 */
#ifndef MULEFARM_WSGI_H
#define MULEFARM_WSGI_H

#include <stdbool.h>

#include <Python.h>

#include "mulefarm/conn.h"

/* Prepares types and constant environ entries for <app> (a new reference
 * is kept). Master, GIL held, before fork. Returns 0, or -1 with a Python
 * exception set. */
int wsgi_setup(PyObject *app, const struct config *cfg);

/* Serves the request whose head is parsed in <c> and writes the response.
 * Python thread, GIL held. <closing> forces "Connection: close". Returns
 * true when the connection may carry another request. */
bool wsgi_serve(struct conn *c, bool closing);

#endif
