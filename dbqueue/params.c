/*
 * params.c - array parameters in PostgreSQL's binary format (array_recv),
 * so that a batch of jobs travels as a handful of parameters of one
 * statement, with no text escaping of payloads; big-endian loads for
 * binary results.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int reserve(struct dbq__buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->len + more <= b->cap)
		return DBQ_OK;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL)
		return DBQ_ENOMEM;
	b->p = p;
	b->cap = cap;
	return DBQ_OK;
}

static void store_u32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

int dbq__arr_begin(struct dbq__buf *b, uint32_t elem_oid, size_t n, bool has_null)
{
	b->len = 0;
	if (reserve(b, 20) != DBQ_OK)
		return DBQ_ENOMEM;
	store_u32(b->p, 1);                /* dimensions */
	store_u32(b->p + 4, has_null);     /* has nulls */
	store_u32(b->p + 8, elem_oid);     /* element type */
	store_u32(b->p + 12, (uint32_t)n); /* length */
	store_u32(b->p + 16, 1);           /* lower bound */
	b->len = 20;
	return DBQ_OK;
}

int dbq__arr_put(struct dbq__buf *b, const void *data, size_t len)
{
	if (data == NULL) {
		if (reserve(b, 4) != DBQ_OK)
			return DBQ_ENOMEM;
		store_u32(b->p + b->len, UINT32_MAX); /* -1: NULL */
		b->len += 4;
		return DBQ_OK;
	}
	if (len > INT32_MAX || reserve(b, 4 + len) != DBQ_OK)
		return DBQ_ENOMEM;
	store_u32(b->p + b->len, (uint32_t)len);
	if (len > 0)
		memcpy(b->p + b->len + 4, data, len);
	b->len += 4 + len;
	return DBQ_OK;
}

int dbq__arr_put_i32(struct dbq__buf *b, int32_t v)
{
	char p[4];

	store_u32(p, (uint32_t)v);
	return dbq__arr_put(b, p, 4);
}

int dbq__arr_put_i64(struct dbq__buf *b, int64_t v)
{
	char p[8];

	store_u32(p, (uint32_t)((uint64_t)v >> 32));
	store_u32(p + 4, (uint32_t)v);
	return dbq__arr_put(b, p, 8);
}

void dbq__buf_free(struct dbq__buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int32_t dbq__load_i32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (int32_t)((uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3]);
}

int64_t dbq__load_i64(const char *p)
{
	return (int64_t)((uint64_t)(uint32_t)dbq__load_i32(p) << 32 |
	                 (uint32_t)dbq__load_i32(p + 4));
}
