/*
 * yaml.c - YAML config files through libyaml's document API.
 *
 * uWSGI 2.0 as shipped in pyuwsgi wheels reads YAML line by line (quotes
 * stay in values, '#' cuts anywhere); this reader is real YAML instead, as
 * uWSGI's libyaml build is, so that Galaxy's galaxy.yml - a uwsgi: section
 * beside a deeply nested galaxy: section with anchors, lists of maps and
 * block strings - reads the same way as Galaxy's own PyYAML sees it.
 *
 * libyaml's loader keeps duplicate mapping keys as separate pairs, which is
 * what repeated options need. Aliases are nodes shared by index, so they
 * cost nothing here; only the section is walked, and only two levels deep.
 * The whole stream is loaded before the section is looked at, and the
 * section is checked before the first option goes out, so an error
 * anywhere means no options.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "mulefarm/config_file.h"

struct yml {
	yaml_document_t *doc;
	const char *file, *section;
	bool emitting;
	cfg_emit_fn emit;
	void *ctx;
	char *err;
	size_t errlen;
};

static int yml_line(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

static const char *yml_kind(const yaml_node_t *n)
{
	return n->type == YAML_MAPPING_NODE ? "a mapping" : "a list";
}

/* YAML's null: empty, ~, null (plain), or tagged !!null. */
static bool yml_is_null(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	if (n->tag != NULL && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
		return true;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* A scalar holding a NUL ("\0" in a double-quoted string) cannot be handed
 * out as a C string. */
static bool yml_has_nul(const yaml_node_t *n)
{
	return strlen((const char *)n->data.scalar.value) != n->data.scalar.length;
}

/* One item: <v> a scalar value (NULL: a bare flag) of <key>. */
static int yml_emit(struct yml *y, const yaml_node_t *key, const yaml_node_t *v, int line)
{
	struct cfg_item item = {(const char *)key->data.scalar.value, NULL, y->file, line};

	if (yml_has_nul(v)) {
		cfg__errf(y->err, y->errlen, "%s:%d: option '%s': NUL character in the value",
		          y->file, yml_line(v), item.key);
		return -1;
	}
	if (!y->emitting)
		return 0;
	if (!yml_is_null(v))
		item.value = (const char *)v->data.scalar.value;
	return y->emit(y->ctx, &item, y->err, y->errlen);
}

/* One "key: value" pair of the section: a scalar gives one item (the key's
 * line), a list one item per element (each element's line). */
static int yml_option(struct yml *y, const yaml_node_pair_t *pair)
{
	yaml_node_t *k = yaml_document_get_node(y->doc, pair->key);
	yaml_node_t *v = yaml_document_get_node(y->doc, pair->value);
	const char *key;
	yaml_node_item_t *it;
	int rc;

	if (k->type != YAML_SCALAR_NODE) {
		cfg__errf(y->err, y->errlen, "%s:%d: expected a key, found %s", y->file,
		          yml_line(k), yml_kind(k));
		return -1;
	}
	key = (const char *)k->data.scalar.value;
	if (key[0] == '\0' || yml_has_nul(k)) {
		cfg__errf(y->err, y->errlen, "%s:%d: %s key", y->file, yml_line(k),
		          key[0] == '\0' ? "empty" : "NUL character in a");
		return -1;
	}
	if (v->type == YAML_SCALAR_NODE)
		return yml_emit(y, k, v, yml_line(k));
	if (v->type == YAML_MAPPING_NODE) {
		cfg__errf(y->err, y->errlen,
		          "%s:%d: option '%s': expected a value or a list, found a mapping",
		          y->file, yml_line(k), key);
		return -1;
	}
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml_document_get_node(y->doc, *it);

		if (e->type != YAML_SCALAR_NODE) {
			cfg__errf(y->err, y->errlen,
			          "%s:%d: option '%s': a list may hold only values, found %s",
			          y->file, yml_line(e), key, yml_kind(e));
			return -1;
		}
		rc = yml_emit(y, k, e, yml_line(e));
		if (rc != 0)
			return rc;
	}
	return 0;
}

static bool yml_is_section(const struct yml *y, const yaml_node_t *k)
{
	return k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(y->section) &&
	       memcmp(k->data.scalar.value, y->section, k->data.scalar.length) == 0;
}

/* One pass over the top-level mapping <root>; every pair whose key is the
 * section counts, in order. Sets *<found>. */
static int yml_walk(struct yml *y, const yaml_node_t *root, bool *found)
{
	yaml_node_pair_t *top, *pair;
	int rc;

	for (top = root->data.mapping.pairs.start; top < root->data.mapping.pairs.top; top++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, top->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, top->value);

		if (!yml_is_section(y, k))
			continue;
		*found = true;
		if (v->type == YAML_SCALAR_NODE && yml_is_null(v))
			continue; /* "uwsgi:" with every option commented out */
		if (v->type != YAML_MAPPING_NODE) {
			cfg__errf(y->err, y->errlen, "%s:%d: section '%s' is not a mapping",
			          y->file, yml_line(k), y->section);
			return -1;
		}
		for (pair = v->data.mapping.pairs.start; pair < v->data.mapping.pairs.top; pair++) {
			rc = yml_option(y, pair);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

static bool yml_utf16(const char *buf, size_t len)
{
	return len >= 2 && (memcmp(buf, "\xfe\xff", 2) == 0 || memcmp(buf, "\xff\xfe", 2) == 0);
}

/* The line of byte <off> of <buf>, counted as libyaml counts (CR LF, CR,
 * LF, and NEL, LS and PS in UTF-8; only LF in UTF-16): for reader errors,
 * which carry an offset, not a mark, and for the last line. */
static int yml_line_at(const char *buf, size_t len, size_t off)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t end = off < len ? off : len;
	bool utf16 = yml_utf16(buf, len);
	int line = 1;

	for (size_t i = 0; i < end; i++) {
		if (utf16)
			line += p[i] == '\n';
		else if (p[i] == '\n' || (p[i] == '\r' && (i + 1 >= len || p[i + 1] != '\n')))
			line++;
		else if (i >= 1 && p[i - 1] == 0xc2 && p[i] == 0x85)
			line++;
		else if (i >= 2 && p[i - 2] == 0xe2 && p[i - 1] == 0x80 && (p[i] | 1) == 0xa9)
			line++;
	}
	return line;
}

/* libyaml adds a line break to a file that does not end in one, so an error
 * at the end can be a line past the last: that is the last. */
static int yml_mark_line(const yaml_mark_t *m, const char *buf, size_t len)
{
	int last = yml_utf16(buf, len) ? INT_MAX : yml_line_at(buf, len, len);

	return m->line < (size_t)last ? (int)m->line + 1 : last;
}

static void yml_syntax_error(const yaml_parser_t *p, const char *buf, size_t len, const char *file,
                             char *err, size_t errlen)
{
	const char *problem = p->problem != NULL ? p->problem : "invalid YAML";

	if (p->error == YAML_MEMORY_ERROR)
		cfg__errf(err, errlen, "%s: out of memory", file);
	else if (p->error == YAML_READER_ERROR)
		cfg__errf(err, errlen, "%s:%d: %s", file, yml_line_at(buf, len, p->problem_offset),
		          problem);
	else if (p->context != NULL)
		cfg__errf(err, errlen, "%s:%d: %s (%s at line %d)", file,
		          yml_mark_line(&p->problem_mark, buf, len), problem, p->context,
		          yml_mark_line(&p->context_mark, buf, len));
	else
		cfg__errf(err, errlen, "%s:%d: %s", file, yml_mark_line(&p->problem_mark, buf, len),
		          problem);
}

/* An empty document, as a trailing "---" makes. */
static bool yml_is_empty(yaml_document_t *doc)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);

	return root == NULL || (root->type == YAML_SCALAR_NODE && yml_is_null(root));
}

/* Loads the first document of <buf> into <doc>; a second, non-empty
 * document is an error, as it would be silently ignored. */
static int yml_load(const char *buf, size_t len, const char *file, yaml_document_t *doc, char *err,
                    size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t next;
	int rc = -1;

	if (!yaml_parser_initialize(&parser)) {
		cfg__errf(err, errlen, "%s: out of memory", file);
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, doc)) {
		yml_syntax_error(&parser, buf, len, file, err, errlen);
		goto out;
	}
	if (!yaml_parser_load(&parser, &next)) {
		yml_syntax_error(&parser, buf, len, file, err, errlen);
		yaml_document_delete(doc);
		goto out;
	}
	if (!yml_is_empty(&next)) {
		cfg__errf(err, errlen, "%s:%d: a second YAML document; a config file holds one",
		          file, yml_line(yaml_document_get_root_node(&next)));
		yaml_document_delete(doc);
	} else {
		rc = 0;
	}
	yaml_document_delete(&next);
out:
	yaml_parser_delete(&parser);
	return rc;
}

/* cfg_read_yaml() over a buffer; <file> only names it in items and messages. */
static int yml_parse_buf(const char *buf, size_t len, const char *file, const char *section,
                         cfg_emit_fn emit, void *ctx, char *err, size_t errlen)
{
	struct yml y = {NULL, file, section, false, emit, ctx, err, errlen};
	yaml_document_t doc;
	yaml_node_t *root;
	bool found = false;
	int rc = -1;

	if (y.section == NULL || y.section[0] == '\0')
		y.section = "uwsgi";
	if (yml_load(buf, len, file, &doc, err, errlen) == -1)
		return -1;
	y.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root != NULL && root->type != YAML_MAPPING_NODE && !yml_is_empty(&doc)) {
		cfg__errf(err, errlen, "%s:%d: expected a mapping at the top level, found %s", file,
		          yml_line(root), root->type == YAML_SEQUENCE_NODE ? "a list" : "a value");
		goto out;
	}
	if (root != NULL && root->type == YAML_MAPPING_NODE) {
		rc = yml_walk(&y, root, &found);
		if (rc != 0)
			goto out;
	}
	if (!found) {
		cfg__errf(err, errlen, "%s: no '%s' section", file, y.section);
		rc = -1;
		goto out;
	}
	y.emitting = true;
	rc = yml_walk(&y, root, &found);
out:
	yaml_document_delete(&doc);
	return rc;
}

int cfg_read_yaml(const char *path, const char *section, cfg_emit_fn emit, void *ctx, char *err,
                  size_t errlen)
{
	return cfg__read(path, yml_parse_buf, section, emit, ctx, err, errlen);
}
