/*
 * wsgi.c - PEP 3333 on one HTTP/1.1 request: environ, start_response,
 * write(), the response iterable, wsgi.file_wrapper, framing and the
 * access log line.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/log.h"
#include "mulefarm/python.h"
#include "mulefarm/wsgi.h"
#include "mulefarm/wsgi_input.h"

/* One request's response state; start_response and write are its methods. */
struct request {
	PyObject_HEAD struct conn *c; /* NULL once the request is over */
	PyObject *status;             /* str, from start_response */
	PyObject *headers;            /* list of (str, str) */
	bool head_sent;
	bool is_head;
	bool no_body; /* HEAD, 1xx, 204, 304 */
	bool chunked; /* we frame with chunked encoding */
	bool keep;    /* the connection may carry another request */
	bool failed;  /* the client went away or the response broke */
	int code;
	int64_t clen;  /* Content-Length the app declared, or -1 */
	uint64_t sent; /* body bytes handed to the client */
};

struct file_wrapper {
	PyObject_HEAD PyObject *filelike;
	Py_ssize_t blksize;
};

static PyTypeObject request_type, file_wrapper_type;
static PyObject *the_app, *base_environ;
static const struct config *cfg;

#define KEYS(X)                                                                                    \
	X(REQUEST_METHOD)                                                                          \
	X(REQUEST_URI)                                                                             \
	X(PATH_INFO)                                                                               \
	X(QUERY_STRING)                                                                            \
	X(SERVER_PROTOCOL)                                                                         \
	X(SERVER_NAME)                                                                             \
	X(SERVER_PORT)                                                                             \
	X(REMOTE_ADDR)                                                                             \
	X(REMOTE_PORT)                                                                             \
	X(CONTENT_TYPE)                                                                            \
	X(CONTENT_LENGTH)                                                                          \
	X(SCRIPT_NAME)

#define X(k) static PyObject *k_##k;
KEYS(X)
#undef X
static PyObject *k_input, *s_http10, *s_http11, *s_close, *s_https, *s_empty;

/* --- environ --------------------------------------------------------------- */

static PyObject *latin1(const char *p, size_t n)
{
	return PyUnicode_DecodeLatin1(p, (Py_ssize_t)n, NULL);
}

/*
 * Environ keys from the wire (uwsgi vars, HTTP_* names) are the same few on
 * every request. Each distinct one is made once, interned and reused, so
 * that building the environ allocates and hashes only the values. The
 * table never evicts: once half of it is used (a client inventing header
 * names), new keys are made per request, as they were before it. The GIL
 * guards it.
 */
#define KEY_SLOTS 128 /* a power of two */
#define KEY_MAX   64

static struct key_slot {
	uint32_t hash;
	uint8_t len;
	char name[KEY_MAX];
	PyObject *key; /* NULL: a free slot */
} key_slots[KEY_SLOTS];
static size_t key_slots_used;

/* A new reference to the str of latin-1 bytes <p,n>, from the table when it
 * can be. */
static PyObject *env_key(const char *p, size_t n)
{
	if (n > KEY_MAX)
		return latin1(p, n);
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	for (uint32_t i = 0; i < KEY_SLOTS; i++) {
		struct key_slot *e = &key_slots[(h + i) & (KEY_SLOTS - 1)];
		if (e->key == NULL) {
			PyObject *k = latin1(p, n);
			if (k == NULL || key_slots_used >= KEY_SLOTS / 2)
				return k;
			PyUnicode_InternInPlace(&k);
			*e = (struct key_slot){.hash = h, .len = (uint8_t)n, .key = Py_NewRef(k)};
			memcpy(e->name, p, n);
			key_slots_used++;
			return k;
		}
		if (e->hash == h && e->len == n && memcmp(e->name, p, n) == 0)
			return Py_NewRef(e->key);
	}
	return latin1(p, n);
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* PATH_INFO: %XX decoded, each byte one latin-1 character (PEP 3333). */
static PyObject *path_info(struct http_slice path)
{
	if (memchr(path.p, '%', path.len) == NULL)
		return latin1(path.p, path.len);
	char *out = PyMem_Malloc(path.len);
	size_t n = 0;
	if (out == NULL)
		return PyErr_NoMemory();
	for (size_t i = 0; i < path.len; i++) {
		int hi, lo;
		if (path.p[i] == '%' && i + 2 < path.len && (hi = hexval(path.p[i + 1])) >= 0 &&
		    (lo = hexval(path.p[i + 2])) >= 0) {
			out[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[n++] = path.p[i];
		}
	}
	PyObject *s = latin1(out, n);
	PyMem_Free(out);
	return s;
}

static int set_new(PyObject *env, PyObject *key, PyObject *val)
{
	int rc = val ? PyDict_SetItem(env, key, val) : -1;
	Py_XDECREF(val);
	return rc;
}

/* HTTP_<NAME>; a repeated field joins with ", " (Cookie with "; "). */
static int add_header(PyObject *env, const struct http_header *h)
{
	char key[256];
	size_t n = h->name.len;
	if (n + 5 >= sizeof(key) || memchr(h->name.p, '_', n) != NULL)
		return 0; /* '_' would make X-A and X_A the same key: drop it */
	memcpy(key, "HTTP_", 5);
	for (size_t i = 0; i < n; i++) {
		char ch = h->name.p[i];
		key[5 + i] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
	}
	PyObject *k = env_key(key, n + 5);
	if (k == NULL)
		return -1;
	PyObject *old = PyDict_GetItemWithError(env, k);
	PyObject *v;
	if (old == NULL) {
		v = PyErr_Occurred() ? NULL : latin1(h->value.p, h->value.len);
	} else {
		bool cookie = n == 6 && memcmp(key, "HTTP_COOKIE", 11) == 0;
		PyObject *more = latin1(h->value.p, h->value.len);
		v = more ? PyUnicode_FromFormat("%U%s%U", old, cookie ? "; " : ", ", more) : NULL;
		Py_XDECREF(more);
	}
	int rc = set_new(env, k, v);
	Py_DECREF(k);
	return rc;
}

/* SERVER_NAME: the host part of Host, else the listener's address.
 * SERVER_PORT: always the port the request arrived on (CGI's meaning),
 * "" on a unix socket. */
static int server_name(PyObject *env, struct conn *c)
{
	const struct listener *l = c->l;
	PyObject *name = NULL;
	for (size_t i = 0; i < c->req.num_headers && name == NULL; i++) {
		const struct http_header *h = &c->req.headers[i];
		if (!http_slice_eq_nocase(h->name, "host") || h->value.len == 0)
			continue;
		const char *p = h->value.p, *end = p + h->value.len;
		const char *close = p[0] == '[' ? memchr(p, ']', h->value.len) : NULL;
		const char *from = close ? close : p;
		const char *colon = memchr(from, ':', (size_t)(end - from));
		name = latin1(p, colon ? (size_t)(colon - p) : h->value.len);
		if (name == NULL)
			return -1;
	}
	if (name == NULL)
		name = PyUnicode_FromString(l->server_name);
	if (set_new(env, k_SERVER_NAME, name) == -1)
		return -1;
	return set_new(env, k_SERVER_PORT, PyUnicode_FromString(l->server_port));
}

static int add_request_line(PyObject *env, struct conn *c)
{
	const struct http_request *q = &c->req;
	if (set_new(env, k_REQUEST_METHOD, latin1(q->method.p, q->method.len)) == -1 ||
	    set_new(env, k_REQUEST_URI, latin1(q->target.p, q->target.len)) == -1 ||
	    set_new(env, k_PATH_INFO, path_info(q->path)) == -1 ||
	    set_new(env, k_QUERY_STRING, latin1(q->query.p, q->query.len)) == -1 ||
	    PyDict_SetItem(env, k_SERVER_PROTOCOL, q->minor_version ? s_http11 : s_http10) == -1 ||
	    set_new(env, k_REMOTE_ADDR, PyUnicode_FromString(c->peer_addr)) == -1 ||
	    set_new(env, k_REMOTE_PORT, PyUnicode_FromString(c->peer_port)) == -1)
		return -1;
	return server_name(env, c);
}

static bool slice_starts(struct http_slice s, const char *lit)
{
	return s.len >= strlen(lit) && memcmp(s.p, lit, strlen(lit)) == 0;
}

/* One uwsgi var into the environ. UWSGI_* vars are never honoured (they
 * asked uWSGI to load code or change directory); HTTP_CONTENT_LENGTH and
 * HTTP_CONTENT_TYPE duplicate CONTENT_*; repeated HTTP_* vars join as in
 * the HTTP path. Sets *https for UWSGI_SCHEME=https or HTTPS=on. */
static int add_uwsgi_var(PyObject *env, const struct uwsgi_var *v, bool *https)
{
	if (slice_starts(v->key, "UWSGI_")) {
		if (http_slice_eq(v->key, "UWSGI_SCHEME"))
			*https = v->value.len == 5 && strncasecmp(v->value.p, "https", 5) == 0;
		return 0;
	}
	if (http_slice_eq(v->key, "HTTP_CONTENT_LENGTH") ||
	    http_slice_eq(v->key, "HTTP_CONTENT_TYPE"))
		return 0;
	if (http_slice_eq(v->key, "HTTPS") && v->value.len == 2 &&
	    strncasecmp(v->value.p, "on", 2) == 0)
		*https = true;
	PyObject *k = env_key(v->key.p, v->key.len);
	PyObject *val = k ? latin1(v->value.p, v->value.len) : NULL;
	PyObject *old =
	        val && slice_starts(v->key, "HTTP_") ? PyDict_GetItemWithError(env, k) : NULL;
	if (old != NULL) {
		bool cookie = http_slice_eq(v->key, "HTTP_COOKIE");
		Py_SETREF(val, PyUnicode_FromFormat("%U%s%U", old, cookie ? "; " : ", ", val));
	}
	int rc = val && !PyErr_Occurred() ? PyDict_SetItem(env, k, val) : -1;
	Py_XDECREF(k);
	Py_XDECREF(val);
	return rc;
}

static PyObject *build_environ_uwsgi(struct conn *c, PyObject *input)
{
	bool https = false;
	PyObject *env = PyDict_Copy(base_environ);
	if (env == NULL || PyDict_SetItem(env, k_input, input) == -1)
		goto fail;
	for (size_t i = 0; i < c->pkt.num_vars; i++)
		if (add_uwsgi_var(env, &c->pkt.vars[i], &https) == -1)
			goto fail;
	/* Keys PEP 3333 requires, for a packet that lacks them. */
	PyObject *const required[] = {k_PATH_INFO, k_QUERY_STRING, k_SERVER_NAME, k_SERVER_PORT,
	                              k_SERVER_PROTOCOL};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (PyDict_SetDefault(env, required[i], s_empty) == NULL)
			goto fail;
	if (https && PyDict_SetItemString(env, "wsgi.url_scheme", s_https) == -1)
		goto fail;
	return env;
fail:
	Py_XDECREF(env);
	return NULL;
}

static PyObject *build_environ(struct conn *c, PyObject *input)
{
	if (c->l->proto == PROTO_UWSGI)
		return build_environ_uwsgi(c, input);
	PyObject *env = PyDict_Copy(base_environ);
	if (env == NULL || add_request_line(env, c) == -1 ||
	    PyDict_SetItem(env, k_input, input) == -1)
		goto fail;
	for (size_t i = 0; i < c->req.num_headers; i++) {
		const struct http_header *h = &c->req.headers[i];
		int rc;
		if (http_slice_eq_nocase(h->name, "content-type"))
			rc = set_new(env, k_CONTENT_TYPE, latin1(h->value.p, h->value.len));
		else if (http_slice_eq_nocase(h->name, "content-length"))
			rc = set_new(env, k_CONTENT_LENGTH, latin1(h->value.p, h->value.len));
		else
			rc = add_header(env, h);
		if (rc == -1)
			goto fail;
	}
	return env;
fail:
	Py_XDECREF(env);
	return NULL;
}

/* --- start_response ---------------------------------------------------------- */

static bool is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool ascii_eq_nocase(const char *a, Py_ssize_t n, const char *lit)
{
	return (size_t)n == strlen(lit) && strncasecmp(a, lit, (size_t)n) == 0;
}

/* Latin-1 bytes of str <s> (PEP 3333 "native strings"), borrowed from
 * <s> when it is ASCII; otherwise *holder keeps the encoded copy. */
static const char *str_latin1(PyObject *s, Py_ssize_t *n, PyObject **holder)
{
	*holder = NULL;
	if (!PyUnicode_Check(s)) {
		PyErr_Format(PyExc_TypeError, "response status and headers must be str, not %.50s",
		             Py_TYPE(s)->tp_name);
		return NULL;
	}
	if (PyUnicode_IS_COMPACT_ASCII(s)) {
		*n = PyUnicode_GET_LENGTH(s);
		return (const char *)PyUnicode_DATA(s);
	}
	*holder = PyUnicode_AsLatin1String(s);
	if (*holder == NULL)
		return NULL;
	*n = PyBytes_GET_SIZE(*holder);
	return PyBytes_AS_STRING(*holder);
}

static bool has_ctl(const char *p, Py_ssize_t n)
{
	for (Py_ssize_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return true;
	}
	return false;
}

static int check_status(struct request *r, PyObject *status)
{
	PyObject *hold;
	Py_ssize_t n;
	const char *p = str_latin1(status, &n, &hold);
	if (p == NULL)
		return -1;
	bool ok = n >= 3 && p[0] >= '1' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' &&
	          p[2] >= '0' && p[2] <= '9' && (n == 3 || p[3] == ' ') && !has_ctl(p, n);
	if (ok)
		r->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	Py_XDECREF(hold);
	if (!ok)
		PyErr_Format(PyExc_ValueError, "invalid response status %R", status);
	return ok ? 0 : -1;
}

static const char *const hop_by_hop[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding",
        "upgrade",    "te",         "trailer",          NULL,
};

/* One (name, value) pair: a token name that is not hop-by-hop, and a
 * value without CR, LF or other control characters. */
static int check_header(struct request *r, PyObject *item)
{
	PyObject *hn = NULL, *hv = NULL;
	Py_ssize_t nl, vl;
	if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
		PyErr_Format(PyExc_TypeError, "response header %R is not a (name, value) tuple",
		             item);
		return -1;
	}
	const char *name = str_latin1(PyTuple_GET_ITEM(item, 0), &nl, &hn);
	const char *value = name ? str_latin1(PyTuple_GET_ITEM(item, 1), &vl, &hv) : NULL;
	int rc = -1;
	if (value == NULL)
		goto out;
	for (Py_ssize_t i = 0; i < nl; i++)
		if (!is_tchar((unsigned char)name[i]))
			nl = -1;
	if (nl <= 0 || has_ctl(value, vl)) {
		PyErr_Format(PyExc_ValueError,
		             "response header %R has an invalid name or a "
		             "control character (CR/LF) in its value",
		             item);
		goto out;
	}
	for (const char *const *h = hop_by_hop; *h; h++)
		if (ascii_eq_nocase(name, nl, *h)) {
			PyErr_Format(PyExc_ValueError,
			             "hop-by-hop response header %R is not "
			             "allowed in WSGI (PEP 3333)",
			             item);
			goto out;
		}
	if (ascii_eq_nocase(name, nl, "content-length")) {
		int64_t v = 0;
		for (Py_ssize_t i = 0; i < vl && v >= 0; i++)
			v = value[i] >= '0' && value[i] <= '9' && v < INT64_MAX / 10 - 10
			            ? v * 10 + (value[i] - '0')
			            : -1;
		if (vl == 0 || v < 0) {
			PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", item);
			goto out;
		}
		r->clen = v;
	}
	rc = 0;
out:
	Py_XDECREF(hn);
	Py_XDECREF(hv);
	return rc;
}

static PyObject *request_write(PyObject *self, PyObject *data);
static PyMethodDef write_def = {"write", request_write, METH_O, "write(data): send body bytes"};

static PyObject *start_response(PyObject *self, PyObject *args)
{
	struct request *r = (struct request *)self;
	PyObject *status, *headers, *exc_info = NULL;
	if (!PyArg_ParseTuple(args, "OO|O:start_response", &status, &headers, &exc_info))
		return NULL;
	if (exc_info != NULL && exc_info != Py_None) {
		if (r->head_sent) {
			PyObject *t, *v, *tb;
			if (!PyArg_ParseTuple(exc_info, "OOO", &t, &v, &tb))
				return NULL;
			PyErr_Restore(Py_NewRef(t), Py_NewRef(v),
			              tb == Py_None ? NULL : Py_NewRef(tb));
			return NULL;
		}
	} else if (r->status != NULL) {
		PyErr_SetString(PyExc_RuntimeError,
		                "start_response() called again without exc_info");
		return NULL;
	}
	PyObject *list = PySequence_List(headers);
	if (list == NULL)
		return NULL;
	r->clen = -1;
	if (check_status(r, status) == -1)
		goto fail;
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++)
		if (check_header(r, PyList_GET_ITEM(list, i)) == -1)
			goto fail;
	Py_XSETREF(r->status, Py_NewRef(status));
	Py_XSETREF(r->headers, list);
	r->no_body = r->is_head || r->code < 200 || r->code == 204 || r->code == 304;
	return PyCFunction_New(&write_def, self);
fail:
	Py_DECREF(list);
	return NULL;
}

static PyMethodDef start_response_def = {"start_response", start_response, METH_VARARGS,
                                         "start_response(status, headers, exc_info=None)"};

/* --- output ----------------------------------------------------------------- */

struct obuf {
	char *p;
	size_t len, cap;
	char stack[2048];
};

static void ob_init(struct obuf *b)
{
	b->p = b->stack;
	b->len = 0;
	b->cap = sizeof(b->stack);
}

static int ob_add(struct obuf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = (b->len + n) * 2;
		char *p = PyMem_Malloc(cap);
		if (p == NULL)
			return -1;
		memcpy(p, b->p, b->len);
		if (b->p != b->stack)
			PyMem_Free(b->p);
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static void ob_free(struct obuf *b)
{
	if (b->p != b->stack)
		PyMem_Free(b->p);
}

/* The Date header, formatted once a second per thread. */
static const char *http_date(void)
{
	static __thread time_t last;
	static __thread char buf[64];
	time_t now = time(NULL);
	if (now != last) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(buf, sizeof(buf), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		last = now;
	}
	return buf;
}

#define LIT(s) ((struct http_slice){s, sizeof(s) - 1})

/* "Content-Length: <n>\r\n" in <buf> (48 bytes), without printf: this is
 * on every response's path. */
static struct http_slice content_length_line(char *buf, uint64_t n)
{
	char digits[20];
	size_t d = sizeof(digits);
	do
		digits[--d] = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	size_t len = sizeof("Content-Length: ") - 1;
	memcpy(buf, "Content-Length: ", len);
	memcpy(buf + len, digits + d, sizeof(digits) - d);
	len += sizeof(digits) - d;
	memcpy(buf + len, "\r\n", 2);
	return (struct http_slice){buf, len + 2};
}

/* Status line, the app's headers, then framing: the app's Content-Length,
 * else <total> when the whole body is known, else chunked (1.1) or
 * close-delimited (1.0). */
static int build_head(struct request *r, struct obuf *b, int64_t total)
{
	PyObject *hold;
	Py_ssize_t n, vn;
	bool has_date = false;
	const char *p = str_latin1(r->status, &n, &hold);
	if (p == NULL || ob_add(b, "HTTP/1.1 ", 9) || ob_add(b, p, (size_t)n) ||
	    ob_add(b, "\r\n", 2))
		goto fail;
	Py_CLEAR(hold);
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(r->headers); i++) {
		PyObject *item = PyList_GET_ITEM(r->headers, i), *vh = NULL;
		p = str_latin1(PyTuple_GET_ITEM(item, 0), &n, &hold);
		const char *v = p ? str_latin1(PyTuple_GET_ITEM(item, 1), &vn, &vh) : NULL;
		int rc = v == NULL || ob_add(b, p, (size_t)n) || ob_add(b, ": ", 2) ||
		         ob_add(b, v, (size_t)vn) || ob_add(b, "\r\n", 2);
		has_date = has_date || (v && ascii_eq_nocase(p, n, "date"));
		Py_CLEAR(hold);
		Py_XDECREF(vh);
		if (rc)
			goto fail;
	}
	char cl[48];
	struct http_slice framing = {"", 0}, connection = {"", 0};
	if (r->no_body || r->clen >= 0)
		;
	else if (total >= 0)
		framing = content_length_line(cl, (uint64_t)total);
	else if (r->c->req.minor_version == 1)
		framing = LIT("Transfer-Encoding: chunked\r\n");
	else
		r->keep = false;
	if (!r->no_body && r->clen < 0 && total >= 0)
		r->clen = total;
	r->chunked = !r->no_body && r->clen < 0 && r->keep;
	/* Behind the uwsgi protocol every connection carries one request, and
	 * the front server (nginx) dates the response: neither header is
	 * sent, as uWSGI sends neither, and nginx parses two lines fewer. */
	bool front = r->c->l->proto == PROTO_UWSGI;
	if (!r->keep && !front)
		connection = LIT("Connection: close\r\n");
	else if (r->keep && r->c->req.minor_version == 0)
		connection = LIT("Connection: keep-alive\r\n");
	if (ob_add(b, framing.p, framing.len) || ob_add(b, connection.p, connection.len) ||
	    (!has_date && !front && ob_add(b, http_date(), strlen(http_date()))) ||
	    ob_add(b, "\r\n", 2))
		goto fail;
	return 0;
fail:
	Py_XDECREF(hold);
	if (!PyErr_Occurred())
		PyErr_NoMemory();
	return -1;
}

/* Writes <iov>: a non-blocking try with the GIL held, then the rest with
 * the GIL released. Marks the request failed if the client is gone. */
static int send_iov(struct request *r, struct iovec *iov, int cnt)
{
	size_t want = 0;
	for (int i = 0; i < cnt; i++)
		want += iov[i].iov_len;
	ssize_t n = conn_try_writev(r->c, iov, cnt);
	if (n >= 0 && (size_t)n < want) {
		int rc;
		conn_iov_advance(&iov, &cnt, (size_t)n);
		Py_BEGIN_ALLOW_THREADS rc = conn_writev(r->c, iov, cnt);
		Py_END_ALLOW_THREADS n = rc == 0 ? (ssize_t)want : -1;
	}
	if (n == -1) {
		r->failed = true;
		r->keep = false;
		return -1;
	}
	return 0;
}

/* Sends body bytes <p,n> (and the head first, if it is still unsent),
 * framed as decided by build_head(). <total> is the whole body size when
 * known at this point, or -1. Returns 0, or -1 (exception set only if the
 * head was invalid; r->failed if the client went away). */
static int emit(struct request *r, const char *p, size_t n, int64_t total)
{
	struct obuf b;
	struct iovec iov[4];
	char pre[24];
	int cnt = 0, rc;

	if (!r->head_sent && r->status == NULL) {
		PyErr_SetString(PyExc_RuntimeError,
		                "the app sent body bytes without calling start_response()");
		return -1;
	}
	ob_init(&b);
	if (!r->head_sent) {
		if (build_head(r, &b, total) == -1) {
			ob_free(&b);
			return -1;
		}
		r->head_sent = true;
		iov[cnt++] = (struct iovec){b.p, b.len};
	}
	if (r->no_body)
		n = 0;
	if (r->clen >= 0 && r->sent + n > (uint64_t)r->clen) {
		n = (size_t)((uint64_t)r->clen - r->sent); /* the app sent more than it declared */
		r->keep = false;
	}
	if (n > 0 && r->chunked) {
		int len = snprintf(pre, sizeof(pre), "%zx\r\n", n);
		iov[cnt++] = (struct iovec){pre, (size_t)len};
	}
	if (n > 0)
		iov[cnt++] = (struct iovec){(void *)p, n};
	if (n > 0 && r->chunked)
		iov[cnt++] = (struct iovec){(void *)"\r\n", 2};
	r->sent += n;
	/* with this write the whole response is out */
	bool complete = r->no_body || (r->clen >= 0 && (uint64_t)r->clen == r->sent);
	conn_last_write(r->c, total >= 0 && complete);
	rc = cnt ? send_iov(r, iov, cnt) : 0;
	conn_last_write(r->c, false);
	ob_free(&b);
	return rc;
}

static PyObject *request_write(PyObject *self, PyObject *data)
{
	struct request *r = (struct request *)self;
	if (r->c == NULL || r->status == NULL) {
		PyErr_SetString(PyExc_RuntimeError,
		                r->c ? "write() called before start_response()"
		                     : "write() called after the response ended");
		return NULL;
	}
	if (!PyBytes_Check(data)) {
		PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.50s",
		             Py_TYPE(data)->tp_name);
		return NULL;
	}
	if (emit(r, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), -1) == -1) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_OSError, "client disconnected");
		return NULL;
	}
	Py_RETURN_NONE;
}

/* --- the response iterable --------------------------------------------------- */

/* wsgi.file_wrapper: sendfile() for a regular file, else plain iteration.
 * Returns 1 when sent, 0 to fall back to iteration, -1 on error. */
static int send_file(struct request *r, struct file_wrapper *fw)
{
	PyObject *fno = PyObject_CallMethod(fw->filelike, "fileno", NULL);
	int fd = fno ? (int)PyLong_AsLong(fno) : -1;
	Py_XDECREF(fno);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		PyErr_Clear();
		return 0;
	}
	PyObject *pos = PyObject_CallMethod(fw->filelike, "tell", NULL);
	off_t off = pos ? (off_t)PyLong_AsLongLong(pos) : lseek(fd, 0, SEEK_CUR);
	Py_XDECREF(pos);
	PyErr_Clear();
	if (off < 0 || off > st.st_size)
		off = st.st_size;
	uint64_t count = (uint64_t)(st.st_size - off);
	if (r->clen >= 0 && (uint64_t)r->clen < count)
		count = (uint64_t)r->clen;
	bool cork = !r->no_body && count > 0;
	if (cork)
		conn_cork(r->c, true); /* the head and the file in full segments */
	if (emit(r, NULL, 0, (int64_t)count) == -1)
		return r->failed ? 1 : -1;
	if (r->no_body)
		return 1;
	int rc;
	Py_BEGIN_ALLOW_THREADS rc = conn_sendfile(r->c, fd, off, (size_t)count);
	Py_END_ALLOW_THREADS if (cork) conn_cork(r->c, false);
	if (rc == -1) {
		r->failed = true;
		r->keep = false;
	}
	r->sent += count;
	return 1;
}

static int send_sequence(struct request *r, PyObject *seq)
{
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	PyObject **items = PySequence_Fast_ITEMS(seq);
	int64_t total = 0;
	for (Py_ssize_t i = 0; i < n; i++) {
		if (!PyBytes_Check(items[i]))
			return 0; /* let iteration report it */
		total += PyBytes_GET_SIZE(items[i]);
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
		if ((len > 0 || i == n - 1) &&
		    emit(r, PyBytes_AS_STRING(items[i]), (size_t)len, total) == -1)
			return r->failed ? 1 : -1;
	}
	return 1;
}

static int iterate(struct request *r, PyObject *result)
{
	PyObject *it = PyObject_GetIter(result), *item;
	if (it == NULL)
		return -1;
	while ((item = PyIter_Next(it)) != NULL) {
		int rc = 0;
		if (!PyBytes_Check(item)) {
			PyErr_Format(PyExc_TypeError,
			             "the response iterable yielded %.50s, not bytes",
			             Py_TYPE(item)->tp_name);
			rc = -1;
		} else if (PyBytes_GET_SIZE(item) > 0 || r->head_sent) {
			rc = emit(r, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item), -1);
		}
		Py_DECREF(item);
		if (rc == -1)
			break;
	}
	Py_DECREF(it);
	return PyErr_Occurred() ? -1 : 0;
}

/* Sends the response from <result>. Returns -1 with an exception set. */
static int respond(struct request *r, PyObject *result)
{
	int rc = 0;
	if (r->status == NULL && (PyList_CheckExact(result) || PyTuple_CheckExact(result)) &&
	    PySequence_Fast_GET_SIZE(result) == 0) {
		; /* reported below */
	} else if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
		rc = r->status ? send_sequence(r, result) : 0;
	} else if (Py_IS_TYPE(result, &file_wrapper_type) && r->status) {
		rc = send_file(r, (struct file_wrapper *)result);
	}
	if (rc == 0)
		rc = iterate(r, result) == -1 ? -1 : 1;
	if (rc == -1 || r->failed)
		return rc == -1 ? -1 : 0;
	if (r->status == NULL) {
		PyErr_SetString(PyExc_RuntimeError,
		                "the app returned without calling start_response()");
		return -1;
	}
	if (!r->head_sent)
		return emit(r, NULL, 0, 0);
	if (r->chunked) {
		struct iovec end = {(void *)"0\r\n\r\n", 5};
		return send_iov(r, &end, 1) == -1 && !r->failed ? -1 : 0;
	}
	if (!r->no_body && r->clen >= 0 && r->sent < (uint64_t)r->clen)
		r->keep = false; /* shorter than declared: the client must see the close */
	return 0;
}

static void close_result(PyObject *result)
{
	/* The common list of bytes has no close(): asking would build and
	 * clear an AttributeError on every request. */
	if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
		return;
	PyObject *close = PyObject_GetAttr(result, s_close);
	if (close == NULL) {
		PyErr_Clear();
		return;
	}
	PyObject *rc = PyObject_CallNoArgs(close);
	Py_DECREF(close);
	if (rc == NULL) {
		log_info("exception in the response iterable's close():");
		python_print_exception();
	}
	Py_XDECREF(rc);
}

/* An exception from the app: a 500 (or the input's error status) if
 * nothing was sent, else the connection is cut so the client sees it. */
uint64_t wsgi_exceptions;

static void app_error(struct request *r, PyObject *input)
{
	struct conn *c = r->c;
	wsgi_exceptions++;
	int status = input ? wsgi_input_detach(input) : 0;
	if (r->failed) {
		PyErr_Clear();
	} else {
		log_info("exception in the app serving %.*s %.*s:", (int)c->req.method.len,
		         c->req.method.p, (int)c->req.target.len, c->req.target.p);
		python_print_exception();
	}
	r->keep = false;
	if (!r->head_sent && !r->failed) {
		r->code = status ? status : 500;
		r->head_sent = true;
		conn_send_error(c, r->code);
	}
	r->failed = true;
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void access_log(struct request *r, int64_t start_us)
{
	struct conn *c = r->c;
	char line[2048];
	int64_t ms = (mono_us() - start_us) / 1000;
	size_t n = log_prefix(line, sizeof(line));
	int uri = c->req.target.len > 1024 ? 1024 : (int)c->req.target.len;
	struct http_slice proto = {c->req.minor_version ? "HTTP/1.1" : "HTTP/1.0", 8};
	struct http_slice addr = {c->peer_addr, strlen(c->peer_addr)};
	if (c->l->proto == PROTO_UWSGI) { /* what nginx saw */
		proto = uwsgi_packet_get(&c->pkt, "SERVER_PROTOCOL");
		addr = uwsgi_packet_get(&c->pkt, "REMOTE_ADDR");
	}
	if (addr.len == 0)
		addr = (struct http_slice){"-", 1};
	int m = snprintf(line + n, sizeof(line) - n,
	                 "%.*s %.*s %.*s => generated %llu bytes in %lld msecs (%.*s %d)\n",
	                 (int)addr.len, addr.p, (int)c->req.method.len, c->req.method.p, uri,
	                 c->req.target.p, (unsigned long long)r->sent, (long long)ms,
	                 (int)proto.len, proto.p ? proto.p : "", r->code);
	if (m > 0)
		log_write(line,
		          n + ((size_t)m < sizeof(line) - n ? (size_t)m : sizeof(line) - n - 1));
}

/* --- mounts ------------------------------------------------------------------------ */

struct mount {
	PyObject *prefix; /* str, no trailing '/' ("" for the root) */
	PyObject *app;
};

static struct mount *mounts;
static size_t n_mounts;

int wsgi_mount(const char *prefix, PyObject *app)
{
	size_t n = strlen(prefix);
	while (n > 0 && prefix[n - 1] == '/')
		n--;
	struct mount *m = PyMem_Realloc(mounts, (n_mounts + 1) * sizeof(*m));
	if (m == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	mounts = m;
	m[n_mounts].prefix = latin1(prefix, n);
	if (m[n_mounts].prefix == NULL)
		return -1;
	m[n_mounts].app = Py_NewRef(app);
	n_mounts++;
	return 0;
}

/* Whether str <path> is <prefix> or starts with <prefix> "/". */
static bool under_prefix(PyObject *path, PyObject *prefix)
{
	Py_ssize_t pl = PyUnicode_GET_LENGTH(prefix), n = PyUnicode_GET_LENGTH(path);
	if (pl > n || PyUnicode_Tailmatch(path, prefix, 0, pl, -1) != 1)
		return false;
	return pl == n || PyUnicode_READ_CHAR(path, pl) == '/';
}

/* The app for this request (borrowed; NULL: none), adjusting SCRIPT_NAME
 * and PATH_INFO under --manage-script-name. See wsgi_mount(). */
static PyObject *select_app(PyObject *env)
{
	if (n_mounts == 0)
		return the_app;
	PyObject *path = PyDict_GetItemWithError(env, k_PATH_INFO);
	PyObject *script = PyDict_GetItemWithError(env, k_SCRIPT_NAME);
	struct mount *best = NULL;
	for (size_t i = 0; i < n_mounts; i++) {
		struct mount *m = &mounts[i];
		bool hit = cfg->manage_script_name
		                   ? path && under_prefix(path, m->prefix)
		                   : script && PyUnicode_Compare(script, m->prefix) == 0;
		if (hit && (best == NULL ||
		            PyUnicode_GET_LENGTH(m->prefix) > PyUnicode_GET_LENGTH(best->prefix)))
			best = m;
	}
	if (best == NULL)
		return the_app;
	if (cfg->manage_script_name) {
		Py_ssize_t pl = PyUnicode_GET_LENGTH(best->prefix);
		PyObject *rest = PyUnicode_Substring(path, pl, PyUnicode_GET_LENGTH(path));
		if (rest == NULL || PyDict_SetItem(env, k_SCRIPT_NAME, best->prefix) == -1 ||
		    set_new(env, k_PATH_INFO, rest) == -1)
			return NULL;
	}
	return best->app;
}

/* --- serving one request ----------------------------------------------------- */

bool wsgi_serve(struct conn *c, bool closing)
{
	int64_t start_us = cfg->access_log ? mono_us() : 0; /* only the access log needs it */

	struct request *r = PyObject_New(struct request, &request_type);
	if (r == NULL) {
		PyErr_Clear();
		conn_send_error(c, 500);
		return false;
	}
	r->c = c;
	r->status = r->headers = NULL;
	r->head_sent = r->chunked = r->failed = false;
	r->is_head = r->no_body = http_slice_eq_nocase(c->req.method, "HEAD");
	r->keep = c->req.keep_alive && !closing;
	r->code = 0;
	r->clen = -1;
	r->sent = 0;

	PyObject *input = wsgi_input_new(c);
	PyObject *env = input ? build_environ(c, input) : NULL;
	PyObject *sr = env ? PyCFunction_New(&start_response_def, (PyObject *)r) : NULL;
	PyObject *app = sr ? select_app(env) : NULL;
	PyObject *result = app ? PyObject_CallFunctionObjArgs(app, env, sr, NULL) : NULL;
	if (sr && app == NULL && !PyErr_Occurred()) {
		log_info("no app for %.*s: nothing is mounted there and there is no default app",
		         (int)c->req.target.len, c->req.target.p);
		r->code = 404;
		r->keep = false;
		conn_send_error(c, 404);
	} else if (result == NULL) {
		app_error(r, input);
	} else {
		if (respond(r, result) == -1)
			app_error(r, input);
		close_result(result);
		if (PyErr_Occurred())
			PyErr_Clear();
	}
	if (cfg->access_log)
		access_log(r, start_us);
	if (input != NULL)
		wsgi_input_detach(input);
	r->c = NULL;
	bool keep = r->keep && !r->failed;
	Py_XDECREF(result);
	Py_XDECREF(sr);
	Py_XDECREF(env);
	Py_XDECREF(input);
	Py_DECREF(r);
	return keep;
}

static void request_dealloc(PyObject *self)
{
	struct request *r = (struct request *)self;
	Py_XDECREF(r->status);
	Py_XDECREF(r->headers);
	PyObject_Free(self);
}

static PyTypeObject request_type = {
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "uwsgi._Request",
        .tp_basicsize = sizeof(struct request),
        .tp_dealloc = request_dealloc,
        .tp_flags = Py_TPFLAGS_DEFAULT,
};

/* --- wsgi.file_wrapper -------------------------------------------------------- */

static PyObject *fw_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	static char *names[] = {"filelike", "blksize", NULL};
	PyObject *filelike;
	Py_ssize_t blksize = 8192;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:file_wrapper", names, &filelike, &blksize))
		return NULL;
	struct file_wrapper *fw = (struct file_wrapper *)type->tp_alloc(type, 0);
	if (fw != NULL) {
		fw->filelike = Py_NewRef(filelike);
		fw->blksize = blksize > 0 ? blksize : 8192;
	}
	return (PyObject *)fw;
}

static PyObject *fw_next(PyObject *self)
{
	struct file_wrapper *fw = (struct file_wrapper *)self;
	PyObject *data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
	if (data != NULL && PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0)
		Py_CLEAR(data); /* StopIteration */
	return data;
}

static PyObject *fw_close(PyObject *self, PyObject *unused)
{
	struct file_wrapper *fw = (struct file_wrapper *)self;
	PyObject *close = PyObject_GetAttr(fw->filelike, s_close);
	if (close == NULL) {
		PyErr_Clear();
		Py_RETURN_NONE;
	}
	PyObject *rc = PyObject_CallNoArgs(close);
	Py_DECREF(close);
	return rc;
}

static void fw_dealloc(PyObject *self)
{
	Py_XDECREF(((struct file_wrapper *)self)->filelike);
	Py_TYPE(self)->tp_free(self);
}

static PyMethodDef fw_methods[] = {
        {"close", fw_close, METH_NOARGS, "close the wrapped file"},
        {NULL, NULL, 0, NULL},
};

static PyMemberDef fw_members[] = {
        {"filelike", T_OBJECT, offsetof(struct file_wrapper, filelike), READONLY, NULL},
        {"blksize", T_PYSSIZET, offsetof(struct file_wrapper, blksize), READONLY, NULL},
        {NULL, 0, 0, 0, NULL},
};

static PyTypeObject file_wrapper_type = {
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "uwsgi.FileWrapper",
        .tp_basicsize = sizeof(struct file_wrapper),
        .tp_dealloc = fw_dealloc,
        .tp_flags = Py_TPFLAGS_DEFAULT,
        .tp_doc = "wsgi.file_wrapper: sent with sendfile() when the file has a fileno()",
        .tp_iter = PyObject_SelfIter,
        .tp_iternext = fw_next,
        .tp_methods = fw_methods,
        .tp_members = fw_members,
        .tp_new = fw_new,
};

/* --- set-up -------------------------------------------------------------------- */

static int base_set(const char *key, PyObject *val)
{
	int rc = val ? PyDict_SetItemString(base_environ, key, val) : -1;
	Py_XDECREF(val);
	return rc;
}

int wsgi_setup(PyObject *app, const struct config *c)
{
	cfg = c;
	the_app = Py_XNewRef(app);
#define X(k) k_##k = PyUnicode_InternFromString(#k);
	KEYS(X)
#undef X
	k_input = PyUnicode_InternFromString("wsgi.input");
	s_http10 = PyUnicode_InternFromString("HTTP/1.0");
	s_http11 = PyUnicode_InternFromString("HTTP/1.1");
	s_close = PyUnicode_InternFromString("close");
	s_https = PyUnicode_InternFromString("https");
	s_empty = PyUnicode_InternFromString("");
	if (PyType_Ready(&request_type) == -1 || PyType_Ready(&file_wrapper_type) == -1 ||
	    wsgi_input_setup() == -1)
		return -1;
	base_environ = PyDict_New();
	if (base_environ == NULL || base_set("wsgi.version", Py_BuildValue("(ii)", 1, 0)) ||
	    base_set("wsgi.url_scheme", PyUnicode_FromString("http")) ||
	    base_set("wsgi.errors", Py_XNewRef(PySys_GetObject("stderr"))) ||
	    base_set("wsgi.multithread", PyBool_FromLong(c->threads > 1)) ||
	    base_set("wsgi.multiprocess", PyBool_FromLong(c->processes > 1)) ||
	    base_set("wsgi.run_once", Py_NewRef(Py_False)) ||
	    base_set("wsgi.input_terminated", Py_NewRef(Py_True)) ||
	    base_set("wsgi.file_wrapper", Py_NewRef((PyObject *)&file_wrapper_type)) ||
	    base_set("SCRIPT_NAME", PyUnicode_FromString("")))
		return -1;
	return 0;
}
