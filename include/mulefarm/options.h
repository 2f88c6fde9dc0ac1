/*
 * options.h - the one options table.
 *
 * MF_OPTIONS is the single source for the command-line parser, --help,
 * docs/options.md (`mulefarm --options-md`) and `uwsgi.opt`. Names and
 * meanings follow uWSGI 2.0; where mulefarm differs the help text says so.
 *
 * X(ID, name, kind, repeat, default, help)
 *   kind: OPT_STR  takes a value
 *         OPT_INT  takes an integer value
 *         OPT_FLAG optional value: bare, or 1/true/yes/on, 0/false/no/off;
 *                  when absent, <default> ("1") or false (NULL)
 *         OPT_OPT  optional value; bare means <default>
 *   repeat: true when each occurrence adds a value (otherwise the last wins)
 */
#ifndef MULEFARM_OPTIONS_H
#define MULEFARM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define MF_OPTIONS(X)                                                                              \
	X(HTTP_SOCKET, "http-socket", OPT_STR, true, NULL,                                         \
	  "bind ADDR (host:port, [v6]:port, :port or a unix path); workers speak HTTP/1.1")        \
	X(HTTP, "http", OPT_STR, true, NULL,                                                       \
	  "like --http-socket: served by the workers directly, no router process")                 \
	X(SOCKET, "socket", OPT_STR, true, NULL,                                                   \
	  "bind ADDR and speak the uwsgi protocol (for nginx uwsgi_pass)")                         \
	X(CHOWN_SOCKET, "chown-socket", OPT_STR, false, NULL,                                      \
	  "owner of unix sockets: user[:group]")                                                   \
	X(UMASK, "umask", OPT_STR, false, NULL, "process umask (octal), set before binding")       \
	X(CHMOD_SOCKET, "chmod-socket", OPT_OPT, false, "666",                                     \
	  "mode of unix sockets (octal; bare means 666)")                                          \
	X(REUSE_PORT, "reuse-port", OPT_FLAG, false, NULL,                                         \
	  "one SO_REUSEPORT TCP socket per worker, each with its own accept queue (mulefarm)")     \
	X(LISTEN, "listen", OPT_INT, false, "100", "listen backlog of every socket")               \
	X(WSGI_FILE, "wsgi-file", OPT_STR, false, NULL, "load the WSGI app from this file")        \
	X(MODULE, "module", OPT_STR, false, NULL,                                                  \
	  "load the WSGI app from pkg.mod[:callable]; a trailing () calls a factory")              \
	X(CALLABLE, "callable", OPT_STR, false, "application", "name of the WSGI callable")        \
	X(PYTHONPATH, "pythonpath", OPT_STR, true, NULL,                                           \
	  "prepend a directory (glob patterns expand) to sys.path")                                \
	X(VIRTUALENV, "virtualenv", OPT_STR, false, NULL,                                          \
	  "use this virtualenv's site-packages (and set sys.prefix to it)")                        \
	X(CHDIR, "chdir", OPT_STR, false, NULL, "chdir to DIR before loading the app")             \
	X(MOUNT, "mount", OPT_STR, true, NULL,                                                     \
	  "mount an app at a prefix: /prefix=pkg.mod:callable (or =file.py)")                      \
	X(MANAGE_SCRIPT_NAME, "manage-script-name", OPT_FLAG, false, NULL,                         \
	  "split SCRIPT_NAME and PATH_INFO on the --mount prefix")                                 \
	X(STATIC_MAP, "static-map", OPT_STR, true, NULL,                                           \
	  "serve /prefix=/dir: /prefix/x from /dir/x, in C (missing files go to the app)")         \
	X(STATIC_MAP2, "static-map2", OPT_STR, true, NULL,                                         \
	  "like --static-map but the whole path is appended: /prefix/x from /dir/prefix/x")        \
	X(CHECK_STATIC, "check-static", OPT_STR, true, NULL,                                       \
	  "serve any path from DIR when the file exists there")                                    \
	X(STATIC_INDEX, "static-index", OPT_STR, true, NULL,                                       \
	  "file names tried for a directory (e.g. index.html)")                                    \
	X(STATIC_SAFE, "static-safe", OPT_STR, true, NULL,                                         \
	  "a directory static files may resolve into (e.g. through symlinks)")                     \
	X(PROCESSES, "processes", OPT_INT, false, NULL,                                            \
	  "number of worker processes (default: one per CPU core)")                                \
	X(THREADS, "threads", OPT_INT, false, "4", "Python threads per worker")                    \
	X(SCHED_BATCH, "sched-batch", OPT_FLAG, false, "1",                                        \
	  "run the workers under SCHED_BATCH: a woken worker does not preempt (mulefarm; =0 off)") \
	X(ENABLE_THREADS, "enable-threads", OPT_FLAG, false, NULL,                                 \
	  "accepted for compatibility: threads are always enabled")                                \
	X(MASTER, "master", OPT_FLAG, false, NULL,                                                 \
	  "accepted for compatibility: there is always a master")                                  \
	X(BUFFER_SIZE, "buffer-size", OPT_INT, false, "4096",                                      \
	  "largest request head (request line and headers) in bytes")                              \
	X(LIMIT_POST, "limit-post", OPT_INT, false, "0",                                           \
	  "largest request body in bytes (0: no limit); larger gets 413")                          \
	X(SOCKET_TIMEOUT, "socket-timeout", OPT_INT, false, "4",                                   \
	  "seconds a client may stall while sending a request or reading a response")              \
	X(KEEPALIVE_TIMEOUT, "keepalive-timeout", OPT_INT, false, "15",                            \
	  "seconds an idle keep-alive connection is kept open (mulefarm)")                         \
	X(DISABLE_LOGGING, "disable-logging", OPT_FLAG, false, NULL, "no access log")              \
	X(DIE_ON_TERM, "die-on-term", OPT_FLAG, false, NULL,                                       \
	  "accepted: SIGTERM always shuts down (gracefully)")                                      \
	X(PY_CALL_OSAFTERFORK, "py-call-osafterfork", OPT_FLAG, false, NULL,                       \
	  "accepted: fork hooks always run")                                                       \
	X(WORKER_RELOAD_MERCY, "worker-reload-mercy", OPT_INT, false, "60",                        \
	  "seconds a worker may take to finish in-flight requests when stopping")                  \
	X(RELOAD_MERCY, "reload-mercy", OPT_INT, false, "60",                                      \
	  "seconds the whole fleet may take to stop gracefully (caps the per-role mercies)")       \
	X(MULE_RELOAD_MERCY, "mule-reload-mercy", OPT_INT, false, "60",                            \
	  "seconds a mule may take to finish its job when stopping")                               \
	X(PIDFILE, "pidfile", OPT_STR, false, NULL, "write the master's pid to FILE")              \
	X(PIDFILE2, "pidfile2", OPT_STR, false, NULL,                                              \
	  "like --pidfile (uWSGI writes it after dropping privileges; the same here)")             \
	X(DAEMONIZE, "daemonize", OPT_STR, false, NULL,                                            \
	  "detach before loading the app and log to FILE")                                         \
	X(DAEMONIZE2, "daemonize2", OPT_STR, false, NULL,                                          \
	  "detach after loading the app and log to FILE")                                          \
	X(LOGTO, "logto", OPT_STR, false, NULL, "append stdout and stderr to FILE")                \
	X(LOGTO2, "logto2", OPT_STR, false, NULL, "like --logto, opened after the app is loaded")  \
	X(LOG_DATE, "log-date", OPT_OPT, false, "%a %b %e %H:%M:%S %Y",                            \
	  "prefix mulefarm's log lines with the date (optional strftime format)")                  \
	X(STOP, "stop", OPT_STR, false, NULL,                                                      \
	  "send SIGINT (immediate shutdown) to the master in PIDFILE, then exit")                  \
	X(GRACEFUL_STOP, "graceful-stop", OPT_STR, false, NULL,                                    \
	  "send SIGTERM (graceful shutdown) to the master in PIDFILE, then exit (mulefarm)")       \
	X(RELOAD, "reload", OPT_STR, false, NULL,                                                  \
	  "send SIGHUP (graceful reload) to the master in PIDFILE, then exit")                     \
	X(TOUCH_RELOAD, "touch-reload", OPT_STR, true, NULL,                                       \
	  "reload gracefully when FILE's modification time changes")                               \
	X(MASTER_FIFO, "master-fifo", OPT_STR, true, NULL,                                         \
	  "read one-letter commands from this FIFO (repeat for slots 0-9)")                        \
	X(ZERG_SERVER, "zerg-server", OPT_STR, false, NULL,                                        \
	  "hand the listening sockets to zerg instances that connect to this unix socket "         \
	  "(created 0600, see --chmod-zerg)")                                                      \
	X(CHMOD_ZERG, "chmod-zerg", OPT_STR, false, "600",                                         \
	  "mode of the --zerg-server and --zergpool unix sockets (octal) (mulefarm)")              \
	X(ZERG, "zerg", OPT_STR, true, NULL,                                                       \
	  "attach to the sockets of the zerg server at PATH instead of binding")                   \
	X(ZERG_FALLBACK, "zerg-fallback", OPT_FLAG, false, NULL,                                   \
	  "bind the sockets as usual when the zerg server cannot be reached")                      \
	X(ZERGPOOL, "zergpool", OPT_STR, true, NULL,                                               \
	  "run only a zerg pool: PATH:addr1,addr2 binds the addresses and hands them to zerg "     \
	  "instances connecting to PATH (no app)")                                                 \
	X(TRANSPARENT_RESTART, "transparent-restart", OPT_STR, false, NULL,                        \
	  "ask the master in PIDFILE to start a new instance that takes over through zerg mode, "  \
	  "then exit 0 once it accepts (mulefarm)")                                                \
	X(TRANSPARENT_RESTART_TIMEOUT, "transparent-restart-timeout", OPT_INT, false, "300",       \
	  "seconds a transparent restart's new instance may take to accept on every worker "       \
	  "(mulefarm)")                                                                            \
	X(HARAKIRI, "harakiri", OPT_INT, false, "0",                                               \
	  "kill and replace a worker whose request runs longer than N seconds (0: never)")         \
	X(MAX_REQUESTS, "max-requests", OPT_INT, false, "0",                                       \
	  "recycle a worker gracefully after N requests (0: never)")                               \
	X(RELOAD_ON_RSS, "reload-on-rss", OPT_INT, false, "0",                                     \
	  "recycle a worker gracefully once its RSS exceeds N megabytes (0: never)")               \
	X(PROCNAME_PREFIX, "procname-prefix", OPT_STR, false, NULL,                                \
	  "prefix every process title with this text")                                             \
	X(STATS, "stats", OPT_STR, false, NULL,                                                    \
	  "serve a JSON stats snapshot on ADDR (host:port, :port = loopback, or a unix path)")     \
	X(STATS_HTTP, "stats-http", OPT_FLAG, false, NULL, "serve the stats over HTTP")            \
	X(TOP, "top", OPT_STR, false, NULL,                                                        \
	  "show the stats served on ADDR in the terminal, refreshed every second (mulefarm)")      \
	X(HOOK_PRE_APP, "hook-pre-app", OPT_STR, true, NULL,                                       \
	  "run an action in the master before the app is loaded")                                  \
	X(HOOK_POST_APP, "hook-post-app", OPT_STR, true, NULL,                                     \
	  "run an action in the master after the app is loaded")                                   \
	X(HOOK_ACCEPTING, "hook-accepting", OPT_STR, true, NULL,                                   \
	  "run an action in each worker when it starts accepting")                                 \
	X(HOOK_ACCEPTING1, "hook-accepting1", OPT_STR, true, NULL,                                 \
	  "run an action in worker 1 when it starts accepting")                                    \
	X(HOOK_ACCEPTING_ONCE, "hook-accepting-once", OPT_STR, true, NULL,                         \
	  "like --hook-accepting, once per worker per instance (not on respawn)")                  \
	X(HOOK_ACCEPTING1_ONCE, "hook-accepting1-once", OPT_STR, true, NULL,                       \
	  "like --hook-accepting1, once per instance")                                             \
	X(HOOK_AS_MULE, "hook-as-mule", OPT_STR, true, NULL,                                       \
	  "run an action in each mule before its code starts")                                     \
	X(HOOK_MASTER_START, "hook-master-start", OPT_STR, true, NULL,                             \
	  "run an action in the master once workers and mules are spawned")                        \
	X(MULE, "mule", OPT_OPT, true, NULL,                                                       \
	  "add a mule: a script.py run as __main__, pkg.mod:callable, or bare for the default "    \
	  "loop")                                                                                  \
	X(MULES, "mules", OPT_INT, false, "0", "add N bare mules")                                 \
	X(FARM, "farm", OPT_STR, true, NULL, "a farm of mules: name:1,2 (mule ids)")               \
	X(LOCKS, "locks", OPT_INT, false, "0", "N extra locks for uwsgi.lock(): 0..N")             \
	X(MULE_MSG_SIZE, "mule-msg-size", OPT_INT, false, "65536",                                 \
	  "largest farm or mule message in bytes (bigger ones are refused, never truncated)")      \
	X(FARM_QUEUE_SIZE, "farm-queue-size", OPT_INT, false, "65536",                             \
	  "messages each farm or mule queue holds before senders wait (mulefarm)")                 \
	X(FARM_QUEUE_BYTES, "farm-queue-bytes", OPT_INT, false, "8388608",                         \
	  "payload bytes each queue holds before senders wait; at least --mule-msg-size "          \
	  "(mulefarm)")                                                                            \
	X(FARM_MSG_TIMEOUT, "farm-msg-timeout", OPT_INT, false, "5",                               \
	  "seconds farm_msg() waits for room in a full queue (mulefarm)")                          \
	X(FARM_MSG_FULL, "farm-msg-full", OPT_STR, false, "false",                                 \
	  "when the wait runs out: false (return False) or raise (mulefarm.QueueFull)")            \
	X(DB_FARM, "db-farm", OPT_STR, true, NULL,                                                 \
	  "carry farm NAME in PostgreSQL (--dbqueue): farm_msg inserts a job, its mules claim "    \
	  "jobs (mulefarm)")                                                                       \
	X(DBQUEUE, "dbqueue", OPT_STR, false, NULL,                                                \
	  "libpq connection string or URI of the database queue (mulefarm)")                       \
	X(DBQUEUE_LEASE, "dbqueue-lease", OPT_INT, false, "30",                                    \
	  "seconds a claimed job is leased; renewed while it runs, re-queued once expired "        \
	  "(mulefarm)")                                                                            \
	X(DBQUEUE_TIMEOUT, "dbqueue-timeout", OPT_INT, false, "10",                                \
	  "seconds farm_msg()/enqueue() retry an unreachable database before failing (mulefarm)")  \
	X(DBQUEUE_POLL_ONLY, "dbqueue-poll-only", OPT_FLAG, false, NULL,                           \
	  "no LISTEN/NOTIFY, poll instead (PgBouncer transaction pooling) (mulefarm)")             \
	X(DBQUEUE_RETENTION, "dbqueue-retention", OPT_INT, false, "86400",                         \
	  "seconds done jobs stay queryable with mulefarm.job(); 0 deletes them (mulefarm)")       \
	X(HANDLER_NAME, "handler-name", OPT_STR, false, NULL,                                      \
	  "prefix of this instance's handler names, NAME.farm.N (default: the host name); "        \
	  "unique per instance (mulefarm)")                                                        \
	X(MIGRATE, "migrate", OPT_FLAG, false, NULL,                                               \
	  "mulefarm-handler: apply the database queue's migrations, then exit")                    \
	X(STATUS, "status", OPT_FLAG, false, NULL,                                                 \
	  "mulefarm-handler: print each database farm's queue figures, then exit")                 \
	X(IF_EXISTS, "if-exists", OPT_STR, true, NULL,                                             \
	  "config block: the options up to endif apply if PATH exists (%(_) is PATH)")             \
	X(IF_NOT_EXISTS, "if-not-exists", OPT_STR, true, NULL,                                     \
	  "config block: the options up to endif apply if PATH does not exist")                    \
	X(IF_FILE, "if-file", OPT_STR, true, NULL, "config block: if PATH is a regular file")      \
	X(IF_NOT_FILE, "if-not-file", OPT_STR, true, NULL,                                         \
	  "config block: if PATH is not a regular file")                                           \
	X(IF_DIR, "if-dir", OPT_STR, true, NULL, "config block: if PATH is a directory")           \
	X(IF_NOT_DIR, "if-not-dir", OPT_STR, true, NULL,                                           \
	  "config block: if PATH is not a directory")                                              \
	X(IF_ENV, "if-env", OPT_STR, true, NULL,                                                   \
	  "config block: if environment variable NAME is set and not empty")                       \
	X(IF_NOT_ENV, "if-not-env", OPT_STR, true, NULL,                                           \
	  "config block: if environment variable NAME is unset or empty")                          \
	X(ENDIF, "endif", OPT_OPT, true, "", "ends the innermost if-* block")                      \
	X(YAML, "yaml", OPT_STR, true, NULL,                                                       \
	  "read options from section [uwsgi] (or file.yml:section) of a YAML file")                \
	X(INI, "ini", OPT_STR, true, NULL, "read options from an INI file (file.ini[:section])")   \
	X(JSON, "json", OPT_STR, true, NULL,                                                       \
	  "read options from a JSON file (file.json[:section])")                                   \
	X(SET, "set", OPT_STR, true, NULL, "set an option or a placeholder: key=value")            \
	X(SET_PLACEHOLDER, "set-placeholder", OPT_STR, true, NULL,                                 \
	  "set a placeholder for %(key): key=value")                                               \
	X(PRINT_CONFIG, "print-config", OPT_FLAG, false, NULL,                                     \
	  "print the effective options (after expansion, defaults included) as INI, then exit")    \
	X(HELP, "help", OPT_FLAG, false, NULL, "show this help")                                   \
	X(VERSION, "version", OPT_FLAG, false, NULL, "print the version")                          \
	X(OPTIONS_MD, "options-md", OPT_FLAG, false, NULL, "print docs/options.md")

/* Other names uWSGI accepts for the same option: X(alias, ID). */
#define MF_ALIASES(X)                                                                              \
	X("workers", PROCESSES)                                                                    \
	X("p", PROCESSES)                                                                          \
	X("uwsgi-socket", SOCKET)                                                                  \
	X("yml", YAML)                                                                             \
	X("js", JSON)                                                                              \
	X("s", SOCKET)                                                                             \
	X("home", VIRTUALENV)                                                                      \
	X("venv", VIRTUALENV)                                                                      \
	X("H", VIRTUALENV)                                                                         \
	X("pyhome", VIRTUALENV)                                                                    \
	X("pp", PYTHONPATH)                                                                        \
	X("python-path", PYTHONPATH)                                                               \
	X("file", WSGI_FILE)                                                                       \
	X("w", MODULE)                                                                             \
	X("wsgi", MODULE)                                                                          \
	X("M", MASTER)                                                                             \
	X("T", ENABLE_THREADS)                                                                     \
	X("b", BUFFER_SIZE)                                                                        \
	X("L", DISABLE_LOGGING)                                                                    \
	X("l", LISTEN)                                                                             \
	X("zerg-pool", ZERGPOOL)                                                                   \
	X("h", HELP)

enum opt_kind { OPT_STR, OPT_INT, OPT_FLAG, OPT_OPT };

enum opt_id {
#define X(id, name, kind, repeat, def, help) OPT_##id,
	MF_OPTIONS(X)
#undef X
	        OPT__COUNT
};

struct opt_info {
	const char *name;
	enum opt_kind kind;
	bool repeat;
	const char *def;
	const char *help;
};

/* Where an occurrence came from. A value given on the command line beats
 * one from a config file whatever their order; within one origin the last
 * one wins (repeatable options keep every value, in order). */
enum opt_origin { ORIGIN_ENV, ORIGIN_FILE, ORIGIN_CLI };

/* A key in a config file that names no option: a placeholder, usable as
 * %(key) and visible in uwsgi.opt, as in uWSGI. */
#define OPT_PLACEHOLDER OPT__COUNT

/* One occurrence, in the order given. <key> is the name as the user typed
 * it (uwsgi.opt keeps aliases apart, as uWSGI does); <value> is NULL for a
 * bare flag; <where> is "file:line" for config files, else NULL. All are
 * owned by the options object. */
struct opt_entry {
	enum opt_id id; /* or OPT_PLACEHOLDER */
	enum opt_origin origin;
	char *key;
	char *value;
	char *where;
	char *section; /* the config file section it came from (for %x) */
	bool expanded; /* the loader has expanded <value> */
};

struct options {
	struct opt_entry *entries;
	size_t n, cap;
};

extern const struct opt_info opt_table[OPT__COUNT];

/* Resolves a name or alias; returns -1 if unknown. */
int opt_lookup(const char *name);

/* Appends an occurrence (copies <key> and <value>). Validates the value for
 * its kind; on error returns -1 and writes a message naming the option to
 * <err> (size <errlen>). */
int opt_add(struct options *o, const char *key, const char *value, char *err, size_t errlen);

/* Appends without validating (values are validated once expanded, see
 * opt_validate()). <id> may be OPT_PLACEHOLDER. Returns 0 or -1 (ENOMEM). */
int opt_append(struct options *o, int id, const char *key, const char *value,
               enum opt_origin origin, const char *where);

/* Checks every value against its option's kind. Returns 0, or -1 with a
 * message naming the option, the value and where it came from. */
int opt_validate(const struct options *o, char *err, size_t errlen);

void opt_free(struct options *o);

/* The last value given (or the default when bare for OPT_OPT, or the
 * table default when absent). NULL when absent without default. */
const char *opt_str(const struct options *o, enum opt_id id);
long opt_int(const struct options *o, enum opt_id id);
bool opt_flag(const struct options *o, enum opt_id id);
bool opt_given(const struct options *o, enum opt_id id);

/* Parses argv (argv[0] excluded). Returns 0, or -1 with a message in
 * <err>. `--opt value`, `--opt=value`, `-x value` for one-letter aliases. */
int cli_parse(struct options *o, int argc, char **argv, char *err, size_t errlen);

/* Walks argv (argv[0] excluded) and calls <add> for each option with the
 * name as typed and its value (NULL for a bare flag). Unknown names are
 * passed on with the value given after '=', or else the next word unless
 * it is an option or a config file or app (by extension), so that
 * uWSGI-only options such as "--plugin python3" read as uWSGI reads them:
 * <add> judges them.
 * A bare argument stands for a config file or app by its extension
 * (.yaml/.yml, .ini, .json/.js, .py). Returns 0 or -1 with <err> set. */
typedef int (*cli_add_fn)(void *ctx, const char *key, const char *value, char *err, size_t errlen);
int cli_walk(int argc, char **argv, cli_add_fn add, void *ctx, char *err, size_t errlen);

/* Prints --help, and the markdown for docs/options.md. */
void cli_print_help(FILE *f);
void cli_print_markdown(FILE *f);

#endif
