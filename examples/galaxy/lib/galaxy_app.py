"""A stand-in for Galaxy's `galaxy.webapps.galaxy.buildapp:uwsgi_app()`.

examples/galaxy.yml loads it with `module: galaxy_app:uwsgi_app()`: the
trailing `()` makes mulefarm (like uWSGI) call the factory once, in the
master, and serve what it returns.

Like Galaxy, the factory finds its own configuration through a custom key
of the `uwsgi:` section, `galaxy_config_file: '%d%n.yml'`, which mulefarm
keeps as a placeholder in `uwsgi.opt` (expanded to the absolute path of the
YAML file), and then reads the `galaxy:` section of that file itself.

GET /        JSON: uwsgi.opt (bytes decoded), numproc, the worker id, the
             working directory, the process umask and a summary of the
             `galaxy:` section
GET /config  the `galaxy:` section as JSON (needs PyYAML)
Static files (/static/..., /favicon.ico) never reach the app: mulefarm serves
them in C from the static-map entries.
"""
import json
import os

import uwsgi


def _text(v):
    """uwsgi.opt values are bytes, True for a bare flag, or a list of those."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [_text(x) for x in v]
    return v


def _type_name(v):
    if isinstance(v, list):
        return "list[%s]" % ",".join(sorted({type(x).__name__ for x in v}))
    return type(v).__name__


def _umask():
    # /proc/self/status rather than os.umask(), which would have to change
    # the umask of every thread to read it
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return line.split()[1]
    except OSError:
        pass
    return None


def _read_galaxy_section(path):
    """The `galaxy:` section of <path>, or an {'error': ...} mapping."""
    try:
        import yaml
    except ImportError:
        return {"error": "PyYAML is not installed"}
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        return {"error": "%s: %s" % (path, e)}
    section = (doc or {}).get("galaxy")
    if not isinstance(section, dict):
        return {"error": "%s: no 'galaxy:' mapping" % path}
    return section


def _summary(section):
    if "error" in section:
        return section
    job_config = section.get("job_config") or {}
    environments = (job_config.get("execution") or {}).get("environments") or {}
    return {
        "brand": section.get("brand"),
        "keys": sorted(section),
        "handlers": [h.get("id") for h in (job_config.get("handling") or {}).get("handlers", [])],
        "environments": {name: env.get("runner") for name, env in environments.items()},
        "message_box_content": section.get("message_box_content"),
    }


def uwsgi_app():
    """The factory: reads the Galaxy configuration once, returns the app."""
    config_file = uwsgi.opt.get("galaxy_config_file")
    if isinstance(config_file, list):  # given more than once: the first counts
        config_file = config_file[0]
    config_file = _text(config_file)
    section = _read_galaxy_section(config_file) if config_file else {"error": "no galaxy_config_file"}

    def application(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/":
            data = {
                "galaxy_config_file": config_file,
                "galaxy": _summary(section),
                "numproc": uwsgi.numproc,
                "worker_id": uwsgi.worker_id(),
                "cwd": os.getcwd(),
                "umask": _umask(),
                "opt": {k: _text(v) for k, v in uwsgi.opt.items()},
                "opt_types": {k: _type_name(v) for k, v in uwsgi.opt.items()},
                "opt_key_types": sorted({type(k).__name__ for k in uwsgi.opt}),
            }
        elif path == "/config":
            data = section
        elif path == "/job":
            # Galaxy's web side of a job: tell the job-handlers farm (the
            # mules run lib/galaxy_mule.py), as JobHandlerMessage does.
            msg = {"target": "job_handler", "params": {"task": "setup", "job_id": environ.get("QUERY_STRING", "")},
                   "__classname__": "JobHandlerMessage"}
            data = {"sent": uwsgi.farm_msg("job-handlers", json.dumps(msg))}
        else:
            body = b"not found\n"
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        body = json.dumps(data, indent=1, sort_keys=True, default=str).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return application
