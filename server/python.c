/*
 * python.c - the embedded interpreter: start-up, app loading, fork hooks.
 *
 * Loading is done by a few lines of Python (LOADER below): importlib does
 * the real work, and errors arrive as ordinary tracebacks.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/log.h"
#include "mulefarm/pymodule.h"
#include "mulefarm/python.h"

static const char LOADER[] =
        "import glob, importlib, importlib.util, os, site, sys\n"
        "def pythonpath(entries):\n"
        "    # like uWSGI: each entry goes to the front, globs expand\n"
        "    for entry in entries:\n"
        "        matches = sorted(glob.glob(entry)) if glob.has_magic(entry) else [entry]\n"
        "        for p in matches:\n"
        "            sys.path.insert(0, p)\n"
        "def virtualenv(home):\n"
        "    home = os.path.abspath(home)\n"
        "    ver = 'python%d.%d' % sys.version_info[:2]\n"
        "    sp = os.path.join(home, 'lib', ver, 'site-packages')\n"
        "    if not os.path.isdir(sp):\n"
        "        raise RuntimeError('virtualenv %r has no %s' % (home, sp))\n"
        "    cfg = os.path.join(home, 'pyvenv.cfg')\n"
        "    isolated = False\n"
        "    if os.path.exists(cfg):\n"
        "        with open(cfg) as f:\n"
        "            for line in f:\n"
        "                k, _, v = line.partition('=')\n"
        "                if k.strip() == 'include-system-site-packages':\n"
        "                    isolated = v.strip().lower() != 'true'\n"
        "    if isolated:\n"
        "        drop = set(site.getsitepackages() + [site.getusersitepackages()])\n"
        "        sys.path[:] = [p for p in sys.path if p not in drop]\n"
        "    before = list(sys.path)\n"
        "    site.addsitedir(sp)\n"
        "    added = [p for p in sys.path if p not in before]\n"
        "    sys.path[:] = added + before\n"
        "    sys.prefix = sys.exec_prefix = home\n"
        "def _callable(obj, name, where):\n"
        "    call = name.endswith('()')\n"
        "    name = name[:-2] if call else name\n"
        "    try:\n"
        "        app = getattr(obj, name)\n"
        "    except AttributeError:\n"
        "        raise LookupError('%s has no callable %r' % (where, name)) from None\n"
        "    if call:\n"
        "        app = app()\n"
        "    if not callable(app):\n"
        "        raise TypeError('%s: %r is not callable' % (where, name))\n"
        "    return app\n"
        "def load_file(path, name):\n"
        "    mod = 'uwsgi_file_' + ''.join(c if c.isalnum() else '_' for c in path)\n"
        "    if not os.path.exists(path):\n"
        "        raise FileNotFoundError('wsgi-file %r does not exist' % path)\n"
        "    spec = importlib.util.spec_from_file_location(mod, path)\n"
        "    if spec is None:\n"
        "        raise ImportError('cannot load %r as Python source' % path)\n"
        "    m = importlib.util.module_from_spec(spec)\n"
        "    sys.modules[mod] = m\n"
        "    spec.loader.exec_module(m)\n"
        "    return _callable(m, name, path)\n"
        "def load_module(target, name):\n"
        "    mod, sep, attr = target.partition(':')\n"
        "    if mod.endswith('.py') and os.path.exists(mod):\n"
        "        return load_file(mod, attr or name)\n"
        "    return _callable(importlib.import_module(mod), attr or name, mod)\n";

static PyObject *loader;

void python_print_exception(void)
{
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (type == NULL)
		return;
	if (tb != NULL && value != NULL)
		PyException_SetTraceback(value, tb);
	PyErr_Display(type, value, tb);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	PyObject *err = PySys_GetObject("stderr");
	if (err != NULL) {
		PyObject *r = PyObject_CallMethod(err, "flush", NULL);
		Py_XDECREF(r);
		PyErr_Clear();
	}
}

static PyObject *call_loader(const char *fn, PyObject *args)
{
	PyObject *f = args ? PyDict_GetItemString(loader, fn) : NULL;
	PyObject *r = f ? PyObject_CallObject(f, args) : NULL;
	Py_XDECREF(args);
	return r;
}

static int apply_paths(const struct options *o)
{
	PyObject *list = PyList_New(0);
	for (size_t i = 0; list && i < o->n; i++) {
		if (o->entries[i].id != OPT_PYTHONPATH)
			continue;
		PyObject *s = PyUnicode_DecodeFSDefault(o->entries[i].value);
		if (s == NULL || PyList_Append(list, s) == -1)
			Py_CLEAR(list);
		Py_XDECREF(s);
	}
	PyObject *r = list ? call_loader("pythonpath", Py_BuildValue("(N)", list)) : NULL;
	if (r == NULL)
		return -1;
	Py_DECREF(r);
	const char *venv = opt_str(o, OPT_VIRTUALENV);
	if (venv != NULL) {
		r = call_loader("virtualenv", Py_BuildValue("(s)", venv));
		if (r == NULL)
			return -1;
		Py_DECREF(r);
	}
	return 0;
}

static int start_interpreter(const struct server *srv)
{
	PyConfig config;
	PyStatus st;

	if (PyImport_AppendInittab("uwsgi", pymodule_init) == -1 ||
	    PyImport_AppendInittab("mulefarm", pymodule_init_mulefarm) == -1)
		return -1;
	PyConfig_InitPythonConfig(&config);
	config.install_signal_handlers = 0;
	config.parse_argv = 0;
	st = PyConfig_SetBytesArgv(&config, 1, srv->argv);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		log_info("cannot start Python: %s", st.err_msg ? st.err_msg : "unknown error");
		return -1;
	}
	return 0;
}

/* `import mulefarm` is the server's API in both builds. Embedded, it is the
 * built-in module. In the wheel, sys.modules["mulefarm"] is the package the
 * console script runs from; the API's names are copied into it, so the app
 * sees the same functions (and the package keeps its submodules). */
static int export_api(PyObject *modules)
{
	PyObject *api = pymodule_init_mulefarm();
	PyObject *pkg = PyDict_GetItemString(modules, "mulefarm"); /* borrowed */
	int rc = api ? 0 : -1;
	if (rc == 0 && pkg == NULL)
		rc = PyDict_SetItemString(modules, "mulefarm", api);
	PyObject *key, *value;
	Py_ssize_t pos = 0;
	while (rc == 0 && pkg != NULL && PyDict_Next(PyModule_GetDict(api), &pos, &key, &value)) {
		const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
		if (name != NULL && strncmp(name, "__", 2) != 0) /* not __name__, __doc__ ... */
			rc = PyObject_SetAttr(pkg, key, value);
	}
	Py_XDECREF(api);
	return rc;
}

/* The wheel: the interpreter that imported mulefarm._server runs already
 * (the extension reset its signal handlers). What the embedded start gives
 * the app is set up here: sys.argv, an empty __main__, the `uwsgi` and
 * `mulefarm` modules. Returns 0, or -1 with a Python exception set. */
static int adopt_interpreter(const struct server *srv)
{
	PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
	PyObject *argv = Py_BuildValue("[N]", PyUnicode_DecodeFSDefault(srv->argv[0]));
	int rc = argv ? PySys_SetObject("argv", argv) : -1;
	Py_XDECREF(argv);
	PyObject *main_mod = rc == 0 ? PyModule_New("__main__") : NULL;
	rc = main_mod && PyModule_AddObjectRef(main_mod, "__builtins__", PyEval_GetBuiltins()) == 0
	             ? PyDict_SetItemString(modules, "__main__", main_mod)
	             : -1;
	Py_XDECREF(main_mod);
	PyObject *uwsgi = rc == 0 ? pymodule_init() : NULL;
	rc = uwsgi ? PyDict_SetItemString(modules, "uwsgi", uwsgi) : -1;
	Py_XDECREF(uwsgi);
	return rc == 0 ? export_api(modules) : -1;
}

int python_init(const struct server *srv)
{
	PyObject *empty = NULL;
	if (Py_IsInitialized()) {
		if (adopt_interpreter(srv) == -1)
			goto fail;
	} else if (start_interpreter(srv) == -1) {
		return -1;
	}
	/* As `python -c`: the working directory is importable. */
	PyObject *path = PySys_GetObject("path");
	empty = PyUnicode_FromString("");
	if (path == NULL || empty == NULL || PyList_Insert(path, 0, empty) == -1)
		goto fail;
	Py_CLEAR(empty);
	loader = PyDict_New();
	if (loader == NULL || PyDict_SetItemString(loader, "__builtins__", PyEval_GetBuiltins()))
		goto fail;
	PyObject *r = PyRun_String(LOADER, Py_file_input, loader, loader);
	if (r == NULL)
		goto fail;
	Py_DECREF(r);
	if (pymodule_setup(srv) == -1 || apply_paths(srv->cfg.opts) == -1)
		goto fail;
	return 0;
fail:
	Py_XDECREF(empty);
	python_print_exception();
	return -1;
}

PyObject *python_load_app(const struct options *o)
{
	const char *file = opt_str(o, OPT_WSGI_FILE);
	const char *module = opt_str(o, OPT_MODULE);
	const char *name = opt_str(o, OPT_CALLABLE);
	PyObject *app;

	if (file != NULL)
		app = call_loader("load_file", Py_BuildValue("(ss)", file, name));
	else
		app = call_loader("load_module", Py_BuildValue("(ss)", module, name));
	if (app == NULL) {
		python_print_exception();
		log_info("failed to load the app from %s %s", file ? "--wsgi-file" : "--module",
		         file ? file : module);
	}
	return app;
}

PyObject *python_load_target(const char *target, const char *callable)
{
	size_t n = strlen(target);
	bool file = strchr(target, '/') != NULL || (n > 3 && strcmp(target + n - 3, ".py") == 0);
	PyObject *app = call_loader(file ? "load_file" : "load_module",
	                            Py_BuildValue("(ss)", target, callable));
	if (app == NULL) {
		python_print_exception();
		log_info("failed to load the app for --mount from %s", target);
	}
	return app;
}

void python_freeze(void)
{
	PyObject *gc = PyImport_ImportModule("gc");
	PyObject *r = gc ? PyObject_CallMethod(gc, "freeze", NULL) : NULL;
	if (r == NULL)
		PyErr_Clear();
	Py_XDECREF(r);
	Py_XDECREF(gc);
}

void python_before_fork(void)
{
	PyOS_BeforeFork();
}

void python_after_fork_parent(void)
{
	PyOS_AfterFork_Parent();
}

void python_after_fork_child(int worker_id)
{
	PyOS_AfterFork_Child();
	pymodule_set_worker_id(worker_id);
	PyObject *m = PyImport_ImportModule("uwsgi");
	PyObject *hook = m ? PyObject_GetAttrString(m, "post_fork_hook") : NULL;
	if (hook == NULL) {
		PyErr_Clear();
	} else if (hook != Py_None) {
		PyObject *r = PyObject_CallNoArgs(hook);
		if (r == NULL) {
			log_info("uwsgi.post_fork_hook raised:");
			python_print_exception();
		}
		Py_XDECREF(r);
	}
	Py_XDECREF(hook);
	Py_XDECREF(m);
}
