/*
 * wsgi_input.c - wsgi.input over the request body.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>

#include "mulefarm/wsgi_input.h"

struct input {
	PyObject_HEAD struct conn *c; /* NULL once the request is over */
	int error_status;
	char *la; /* lookahead kept by readline */
	size_t la_off, la_len, la_cap;
};

static PyTypeObject input_type;

/* Fills <dst> with up to <n> body bytes: lookahead first, then the
 * connection. Returns bytes (0 at the end) or -1 with an exception set. */
static ssize_t input_raw(struct input *in, char *dst, size_t n)
{
	if (in->la_len > 0) {
		size_t take = n < in->la_len ? n : in->la_len;
		memcpy(dst, in->la + in->la_off, take);
		in->la_off += take;
		in->la_len -= take;
		return (ssize_t)take;
	}
	if (in->c == NULL) {
		PyErr_SetString(PyExc_ValueError, "wsgi.input used after the request ended");
		return -1;
	}
	ssize_t r;
	Py_BEGIN_ALLOW_THREADS r = conn_body_read(in->c, dst, n);
	Py_END_ALLOW_THREADS if (r >= 0) return r;
	switch (errno) {
	case ETIMEDOUT:
		in->error_status = 408;
		PyErr_SetString(PyExc_OSError,
		                "timed out reading the request body (--socket-timeout)");
		break;
	case EPROTO:
		in->error_status = 400;
		PyErr_SetString(PyExc_OSError, "malformed chunked request body");
		break;
	case EFBIG:
		in->error_status = 413;
		PyErr_SetString(PyExc_OSError, "request body larger than --limit-post");
		break;
	default:
		PyErr_SetString(PyExc_OSError, "client disconnected while sending the body");
	}
	return -1;
}

/* Reads until <n> bytes or the end of the body (n < 0: everything). */
static PyObject *input_read_upto(struct input *in, Py_ssize_t n)
{
	size_t cap = n >= 0 ? (size_t)n : 16384;
	if (n >= 0 && in->c && !in->c->req.chunked && in->la_len == 0 &&
	    (uint64_t)n > (uint64_t)in->c->body_left)
		cap = (size_t)in->c->body_left;
	PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
	size_t got = 0;
	while (b != NULL && (n < 0 || got < (size_t)n)) {
		if (got == cap) {
			cap *= 2;
			if (_PyBytes_Resize(&b, (Py_ssize_t)cap) == -1)
				return NULL;
		}
		ssize_t r = input_raw(in, PyBytes_AS_STRING(b) + got, cap - got);
		if (r < 0)
			Py_CLEAR(b);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (b != NULL && got != cap && _PyBytes_Resize(&b, (Py_ssize_t)got) == -1)
		return NULL;
	return b;
}

static int size_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *size)
{
	*size = -1;
	if (nargs > 1) {
		PyErr_SetString(PyExc_TypeError, "expected at most one argument");
		return -1;
	}
	if (nargs == 1 && args[0] != Py_None) {
		*size = PyLong_AsSsize_t(args[0]);
		if (*size == -1 && PyErr_Occurred())
			return -1;
	}
	return 0;
}

static PyObject *input_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t size;
	if (size_arg(args, nargs, &size) == -1)
		return NULL;
	return input_read_upto((struct input *)self, size);
}

/* Makes sure the lookahead holds a '\n' within <limit> bytes, or as much
 * as the body has. Returns -1 with an exception set on a read error. */
static int fill_line(struct input *in, size_t limit)
{
	for (;;) {
		char *nl = in->la_len ? memchr(in->la + in->la_off, '\n', in->la_len) : NULL;
		if (nl != NULL || in->la_len >= limit)
			return 0;
		if (in->la_off > 0) {
			memmove(in->la, in->la + in->la_off, in->la_len);
			in->la_off = 0;
		}
		if (in->la_cap - in->la_len < 4096) {
			size_t cap = in->la_cap ? in->la_cap * 2 : 8192;
			char *la = PyMem_Realloc(in->la, cap);
			if (la == NULL) {
				PyErr_NoMemory();
				return -1;
			}
			in->la = la;
			in->la_cap = cap;
		}
		size_t have = in->la_len;
		in->la_len = 0; /* input_raw must read the connection, not the lookahead */
		ssize_t r = input_raw(in, in->la + have, in->la_cap - have);
		in->la_len = have + (r > 0 ? (size_t)r : 0);
		if (r <= 0)
			return (int)r;
	}
}

static PyObject *readline_upto(struct input *in, Py_ssize_t size)
{
	size_t limit = size < 0 ? SIZE_MAX : (size_t)size;
	if (fill_line(in, limit) == -1)
		return NULL;
	size_t n = in->la_len < limit ? in->la_len : limit;
	char *nl = memchr(in->la + in->la_off, '\n', n);
	if (nl != NULL)
		n = (size_t)(nl - (in->la + in->la_off)) + 1;
	PyObject *line = PyBytes_FromStringAndSize(in->la + in->la_off, (Py_ssize_t)n);
	in->la_off += n;
	in->la_len -= n;
	return line;
}

static PyObject *input_readline(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t size;
	if (size_arg(args, nargs, &size) == -1)
		return NULL;
	return readline_upto((struct input *)self, size);
}

static PyObject *input_readlines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t hint, total = 0;
	if (size_arg(args, nargs, &hint) == -1)
		return NULL;
	PyObject *lines = PyList_New(0);
	while (lines != NULL && (hint <= 0 || total < hint)) {
		PyObject *line = readline_upto((struct input *)self, -1);
		if (line == NULL || PyBytes_GET_SIZE(line) == 0 ||
		    PyList_Append(lines, line) == -1) {
			if (line == NULL || PyErr_Occurred())
				Py_CLEAR(lines);
			Py_XDECREF(line);
			break;
		}
		total += PyBytes_GET_SIZE(line);
		Py_DECREF(line);
	}
	return lines;
}

static PyObject *input_next(PyObject *self)
{
	PyObject *line = readline_upto((struct input *)self, -1);
	if (line != NULL && PyBytes_GET_SIZE(line) == 0) {
		Py_DECREF(line);
		return NULL; /* StopIteration */
	}
	return line;
}

static void input_dealloc(PyObject *self)
{
	struct input *in = (struct input *)self;
	PyMem_Free(in->la);
	Py_TYPE(self)->tp_free(self);
}

static PyMethodDef input_methods[] = {
        {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "read([size])"},
        {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
         "readline([size])"},
        {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
         "readlines([hint])"},
        {NULL, NULL, 0, NULL},
};

static PyTypeObject input_type = {
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "uwsgi._Input",
        .tp_basicsize = sizeof(struct input),
        .tp_dealloc = input_dealloc,
        .tp_flags = Py_TPFLAGS_DEFAULT,
        .tp_doc = "wsgi.input: the request body, streamed",
        .tp_iter = PyObject_SelfIter,
        .tp_iternext = input_next,
        .tp_methods = input_methods,
};

int wsgi_input_setup(void)
{
	return PyType_Ready(&input_type);
}

PyObject *wsgi_input_new(struct conn *c)
{
	struct input *in = PyObject_New(struct input, &input_type);
	if (in == NULL)
		return NULL;
	in->c = c;
	in->error_status = 0;
	in->la = NULL;
	in->la_off = in->la_len = in->la_cap = 0;
	return (PyObject *)in;
}

int wsgi_input_detach(PyObject *input)
{
	struct input *in = (struct input *)input;
	in->c = NULL;
	return in->error_status;
}
