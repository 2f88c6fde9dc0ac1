/*
 * farm.c - mules and farms from the options, and their queues (farm.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/farm.h"
#include "mulefarm/log.h"

struct farms *farms;

static void where(char *buf, size_t len, const struct opt_entry *e)
{
	snprintf(buf, len, "%s%s%s", e->where ? e->where : "--", e->where ? ": " : "", e->key);
}

/* "name:1,2,3" */
static int parse_farm(struct farms *fs, const struct opt_entry *e, char *err, size_t errlen)
{
	char at[512];
	where(at, sizeof(at), e);
	const char *v = e->value ? e->value : "";
	const char *colon = strchr(v, ':');
	if (colon == NULL || colon == v || colon[1] == '\0' ||
	    (size_t)(colon - v) >= FARMQ_NAME_MAX || strncmp(v, "mule:", 5) == 0) {
		snprintf(err, errlen, "%s '%s': want name:1,2 (mule ids; a name under %d bytes)",
		         at, v, FARMQ_NAME_MAX);
		return -1;
	}
	struct farm *f = &fs->f[fs->n];
	snprintf(f->name, sizeof(f->name), "%.*s", (int)(colon - v), v);
	for (size_t i = 0; i < fs->n; i++)
		if (strcmp(fs->f[i].name, f->name) == 0) {
			snprintf(err, errlen, "%s '%s': farm '%s' is declared twice", at, v,
			         f->name);
			return -1;
		}
	f->mules = calloc(strlen(colon), sizeof(int));
	if (f->mules == NULL)
		return -1;
	for (const char *p = colon + 1; *p;) {
		char *end;
		long id = strtol(p, &end, 10);
		if (end == p || (*end != ',' && *end != '\0')) {
			snprintf(err, errlen, "%s '%s': '%s' is not a mule id", at, v, p);
			return -1;
		}
		if (id < 1 || (size_t)id > fs->nmules) {
			snprintf(err, errlen,
			         "%s '%s': there is no mule %ld (%zu mules configured)", at, v, id,
			         fs->nmules);
			return -1;
		}
		f->mules[f->nmules++] = (int)id;
		p = *end ? end + 1 : end;
	}
	fs->n++;
	return 0;
}

int farms_setup(struct farms *fs, const struct options *o, char *err, size_t errlen)
{
	memset(fs, 0, sizeof(*fs));
	size_t nfarm = 0, nmule = (size_t)(opt_int(o, OPT_MULES) > 0 ? opt_int(o, OPT_MULES) : 0);
	for (size_t i = 0; i < o->n; i++) {
		nfarm += o->entries[i].id == OPT_FARM;
		nmule += o->entries[i].id == OPT_MULE;
	}
	if (nfarm > FARMS_MAX) {
		snprintf(err, errlen, "%zu farms: at most %d", nfarm, FARMS_MAX);
		return -1;
	}
	fs->f = calloc(nfarm + 1, sizeof(struct farm));
	fs->mule_targets = calloc(nmule + 1, sizeof(char *));
	if (fs->f == NULL || fs->mule_targets == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < o->n; i++)
		if (o->entries[i].id == OPT_MULE)
			fs->mule_targets[fs->nmules++] = o->entries[i].value;
	fs->nmules = nmule; /* --mules N: bare mules after the listed ones */
	for (size_t i = 0; i < o->n; i++)
		if (o->entries[i].id == OPT_FARM &&
		    parse_farm(fs, &o->entries[i], err, errlen) == -1)
			return -1;
	long locks = opt_int(o, OPT_LOCKS), size = opt_int(o, OPT_MULE_MSG_SIZE);
	if (locks < 0 || locks > 1024 || size < 1 || size > (1L << 30)) {
		snprintf(err, errlen, "--locks must be 0..1024 and --mule-msg-size 1..1073741824");
		return -1;
	}
	fs->nlocks = (size_t)locks + 1;
	fs->max_msg = (size_t)size;
	fs->msg_timeout_ms = (int)opt_int(o, OPT_FARM_MSG_TIMEOUT) * 1000;
	const char *full = opt_str(o, OPT_FARM_MSG_FULL);
	if (strcmp(full, "raise") != 0 && strcmp(full, "false") != 0) {
		snprintf(err, errlen, "--farm-msg-full '%s': want false or raise", full);
		return -1;
	}
	fs->raise_full = strcmp(full, "raise") == 0;
	return 0;
}

static int make_spec(const struct farms *fs, const struct options *o, struct farmq_spec *spec,
                     char ***names)
{
	size_t n = fs->n + fs->nmules + 1;
	*names = calloc(n + 1, sizeof(char *));
	if (*names == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		(*names)[i] = malloc(FARMQ_NAME_MAX);
		if ((*names)[i] == NULL)
			return -1;
		if (i < fs->n)
			snprintf((*names)[i], FARMQ_NAME_MAX, "%s", fs->f[i].name);
		else if (i < n - 1)
			snprintf((*names)[i], FARMQ_NAME_MAX, "mule:%zu", i - fs->n + 1);
		else
			snprintf((*names)[i], FARMQ_NAME_MAX, "mule:*");
	}
	size_t bytes = (size_t)opt_int(o, OPT_FARM_QUEUE_BYTES);
	*spec = (struct farmq_spec){
	        .nqueues = n,
	        .names = (const char *const *)*names,
	        .max_msgs = (size_t)(opt_int(o, OPT_FARM_QUEUE_SIZE) > 0
	                                     ? opt_int(o, OPT_FARM_QUEUE_SIZE)
	                                     : 1),
	        .max_bytes = bytes > fs->max_msg ? bytes : fs->max_msg,
	        .max_msg = fs->max_msg,
	        .nlocks = fs->nlocks,
	};
	return 0;
}

static void free_names(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

/* An inherited region serves again if its queues are the ones configured. */
static bool same_shape(struct farmq *q, const struct farmq_spec *spec)
{
	if (farmq_nqueues(q) != spec->nqueues || farmq_nlocks(q) != spec->nlocks ||
	    farmq_max_msg(q) != spec->max_msg)
		return false;
	for (size_t i = 0; i < spec->nqueues; i++)
		if (strcmp(farmq_name(q, i), spec->names[i]) != 0)
			return false;
	return true;
}

int farms_open(struct farms *fs, const struct options *o, int inherited_fd, char *err,
               size_t errlen)
{
	struct farmq_spec spec;
	char **names = NULL;
	int rc = -1;
	if (make_spec(fs, o, &spec, &names) == -1) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	struct farmq *old = inherited_fd >= 0 ? farmq_attach(inherited_fd, err, errlen) : NULL;
	if (inherited_fd >= 0 && old == NULL) {
		log_info("the farm queues handed over by the reload are unusable (%s): starting "
		         "empty ones",
		         err);
		close(inherited_fd);
	}
	if (old != NULL && same_shape(old, &spec)) {
		fs->q = old;
		rc = 0;
		goto out;
	}
	fs->q = farmq_create(&spec, err, errlen);
	if (fs->q != NULL && old != NULL) {
		size_t lost = 0, moved = farmq_migrate(old, fs->q, &lost);
		log_info("farm queues changed shape: %zu queued messages moved", moved);
		if (lost > 0)
			log_info(
			        "%zu queued messages had no queue in the new configuration and are "
			        "dropped",
			        lost);
		farmq_close(old);
	}
	rc = fs->q ? 0 : -1;
out:
	free_names(names);
	return rc;
}

int farms_find(const struct farms *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (strcmp(fs->f[i].name, name) == 0)
			return (int)i;
	return -1;
}

size_t farms_mule_queue(const struct farms *fs, int id)
{
	return fs->n + (size_t)id - 1;
}

size_t farms_any_mule_queue(const struct farms *fs)
{
	return fs->n + fs->nmules;
}

bool farms_has_mule(const struct farms *fs, size_t farm, int id)
{
	for (size_t i = 0; farm < fs->n && i < fs->f[farm].nmules; i++)
		if (fs->f[farm].mules[i] == id)
			return true;
	return false;
}

void farms_describe_mule(const struct farms *fs, int id, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t f = 0; f < fs->n && used + 1 < len; f++)
		if (farms_has_mule(fs, f, id)) {
			int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "",
			                 fs->f[f].name);
			used += n < 0 ? 0 : (size_t)n < len - used ? (size_t)n : len - used - 1;
		}
}
