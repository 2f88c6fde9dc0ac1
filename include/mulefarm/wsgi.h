/*
 * wsgi.h - PEP 3333: the environ, start_response, wsgi.input,
 * wsgi.file_wrapper, and response framing over HTTP/1.1.
 */
#ifndef MULEFARM_WSGI_H
#define MULEFARM_WSGI_H

#include <stdbool.h>

#include <Python.h>

#include "mulefarm/conn.h"

/* Prepares types and constant environ entries for <app>, the default app
 * (a new reference is kept; NULL when only --mount apps exist). Master,
 * GIL held, before fork. Returns 0, or -1 with a Python exception set. */
int wsgi_setup(PyObject *app, const struct config *cfg);

/*
 * Mounts <app> at <prefix> (trailing slashes dropped; "/" means every
 * path). A request goes to the mount whose prefix is the longest match of
 * PATH_INFO on a segment boundary when --manage-script-name is on (that
 * prefix becomes SCRIPT_NAME and PATH_INFO keeps the rest, "" when the
 * path is the prefix), else to the mount whose prefix equals the
 * SCRIPT_NAME the front end sent; otherwise to the default app, or 404
 * when there is none. After wsgi_setup(); master, GIL held, before fork.
 */
int wsgi_mount(const char *prefix, PyObject *app);

/* Serves the request whose head is parsed in <c> and writes the response.
 * Python thread, GIL held. <closing> forces "Connection: close". Returns
 * true when the connection may carry another request. */
/* Requests whose app raised, in this process (GIL held to write). */
extern uint64_t wsgi_exceptions;

bool wsgi_serve(struct conn *c, bool closing);

#endif
