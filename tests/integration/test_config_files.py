"""Config files (--yaml/--yml, --ini, --json, a bare file argument), --set,
--set-placeholder, environment variables, value expansion and
--print-config, against the real binary.

Single-valued options: a value from the command line beats one from a file
whatever their order; within one origin the last one wins. Repeatable
options (http, http-socket, socket, static-map, pythonpath, ...) never
replace: every occurrence from every source adds a value, as in uWSGI. So
`--http 127.0.0.1:PORT` on the command line does not move the `http:` of
examples/galaxy.yml, it opens a second listener beside 127.0.0.1:8080
(test_cli_http_adds_to_the_files_http). The Galaxy test therefore runs a
copy of galaxy.yml whose `http:` line is rewritten to a free port, next to a
symlink `galaxy -> examples/galaxy` so that the file's `chdir: '%dgalaxy'`
still finds the example's app and static files.

The `server` fixture appends `--processes 1 --threads 2` unless the
arguments name them; those are command-line values and would beat a file's
or the environment's. `configured_server` is the same factory without that
default, for the tests that observe the file's or the environment's value.

YAML and uWSGI's line reader: uWSGI 2.0 as shipped in pyuwsgi wheels reads
YAML line by line, so `key: 'a b'` reaches the app as b"'a b'" (quotes
kept) and `#` cuts a value anywhere. mulefarm reads real YAML (libyaml), as
a uWSGI built with libyaml does and as Galaxy's own PyYAML does: the quotes
are YAML syntax and the value arrives as b'a b'
(test_yaml_unquotes_values_unlike_uwsgis_line_reader). INI has no quoting
in either server: quotes stay.

JSON has no bare flag: `true` gives "1" (and false/null "0"), as in uWSGI's
own JSON reader, so the four-format test expects b"1" there where the other
formats give True.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import conftest
from conftest import APPS, BIN, EXTRA_ARGS, REPO, app_path, free_port_number

GALAXY_YML = REPO / "examples" / "galaxy.yml"
GALAXY_DIR = REPO / "examples" / "galaxy"
UAPP = app_path("uwsgiapp.py")  # answers with uwsgi.opt, numproc, ...
GALAXY_HTTP_LINE = "\n  http: 127.0.0.1:8080\n"


# ---------------------------------------------------------------------------
# helpers


def run(args, env=None, cwd=None, timeout=10):
    """Runs mulefarm to completion (--print-config, errors); returns the
    CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    for k in list(full_env):
        if k.startswith(("UWSGI_", "MULEFARM_")) and k != "MULEFARM_BIN":
            del full_env[k]
    full_env.pop("MULEFARM_BIN", None)
    full_env.update(env or {})
    return subprocess.run(
        [BIN] + EXTRA_ARGS + [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=str(cwd) if cwd else None,
        timeout=timeout,
    )


def print_config(args, **kw):
    p = run(list(args) + ["--print-config"], **kw)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout


def config_error(args, **kw):
    """Runs a configuration that must be refused; returns stderr."""
    p = run(args, **kw)
    assert p.returncode != 0, "accepted: %s\nstdout: %s\nstderr: %s" % (args, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    return p.stderr


def option_lines(text):
    """The lines of --print-config output that are options (no comments)."""
    return [l for l in text.splitlines() if l and not l.startswith((";", "#"))]


def write(path, text):
    path = Path(path)
    path.write_text(text)
    return path


def plain(opt):
    """uwsgiapp.py's encoding of uwsgi.opt ({"bytes": "x"} for b"x") back to
    Python values."""

    def dec(v):
        if isinstance(v, dict) and set(v) == {"bytes"}:
            return v["bytes"].encode("latin-1")
        if isinstance(v, list):
            return [dec(x) for x in v]
        return v

    return {k: dec(v) for k, v in opt.items()}


@pytest.fixture
def configured_server(server, monkeypatch):
    """The `server` factory without its default `--processes 1 --threads 2`
    (command-line values, which would beat the file and the environment)."""
    assert hasattr(conftest, "_has_opt")
    monkeypatch.setattr(conftest, "_has_opt", lambda args, names: True)
    return server


# ---------------------------------------------------------------------------
# (a) examples/galaxy.yml


def galaxy_copy(tmp_path, port):
    """examples/galaxy.yml with its http line moved to <port>, beside a
    symlink to examples/galaxy/; returns the copy's path."""
    text = GALAXY_YML.read_text()
    assert text.count(GALAXY_HTTP_LINE) == 1, "examples/galaxy.yml changed: no single '  http: 127.0.0.1:8080' line"
    d = tmp_path / "galaxy-conf"
    d.mkdir()
    (d / "galaxy").symlink_to(GALAXY_DIR, target_is_directory=True)
    return write(d / "galaxy.yml", text.replace(GALAXY_HTTP_LINE, "\n  http: 127.0.0.1:%d\n" % port))


def test_galaxy_yml_runs(configured_server, tmp_path):
    port = free_port_number()
    yml = galaxy_copy(tmp_path, port)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    srv = configured_server(["--yaml", str(yml)], addr=("127.0.0.1", port), cwd=str(elsewhere))
    d = srv.get_json("/")
    opt = d["opt"]
    types = d["opt_types"]

    # str keys, bytes values, lists for repeated keys (both YAML forms:
    # duplicate keys for static-map and hook-master-start, a sequence for mule)
    assert d["opt_key_types"] == ["str"]
    assert types["yaml"] == "bytes" and opt["yaml"] == str(yml)
    for key in ("http", "buffer-size", "processes", "threads", "module", "umask", "farm", "chdir", "master"):
        assert types[key] == "bytes", key
    assert types["static-map"] == "list[bytes]"
    assert opt["static-map"] == ["/static=static", "/favicon.ico=static/favicon.ico"]
    assert types["mule"] == "list[bytes]"
    assert opt["mule"] == ["lib/galaxy_mule.py", "lib/galaxy_mule.py"]
    assert types["hook-master-start"] == "list[bytes]"
    assert opt["hook-master-start"] == [
        "unix_signal:2 gracefully_kill_them_all",
        "unix_signal:15 gracefully_kill_them_all",
    ]
    assert opt["farm"] == "job-handlers:1,2"
    assert opt["umask"] == "027"  # quoted in the file: stays text, not 23
    assert opt["master"] == "true"
    assert opt["http"] == "127.0.0.1:%d" % port
    # the custom key: a placeholder, %d%n.yml expanded to the file's absolute path
    real_yml = os.path.realpath(yml)
    assert opt["galaxy_config_file"] == real_yml
    assert opt["chdir"] == os.path.dirname(real_yml) + "/galaxy"
    assert "virtualenv" not in opt  # commented out in the example
    assert "galaxy" not in opt and "brand" not in opt  # the other section is not read

    # the options took effect
    assert d["numproc"] == 2
    assert d["cwd"] == os.path.realpath(GALAXY_DIR)
    assert d["umask"] == "0027"
    assert opt["threads"] == "4" and opt["buffer-size"] == "16384"
    # the factory read its own section of the same file
    assert d["galaxy_config_file"] == real_yml
    g = d["galaxy"]
    assert "error" not in g, g
    assert g["brand"] == "mulefarm example"
    assert g["handlers"] == ["handler0", "handler1"]
    assert g["environments"] == {"local_env": "local", "local_big": "local", "local_alias": "local"}
    assert g["message_box_content"].startswith("This server runs the Galaxy example")
    assert "\n" not in g["message_box_content"].rstrip("\n")  # a folded block

    # buffer-size 16384: a 10 KB header, past the 4096 default, is fine
    status, _, _ = srv.get("/", headers={"X-Big": "x" * 10000})
    assert status == 200

    # static-map, relative to chdir
    status, _, body = srv.get("/static/style.css")
    assert status == 200 and body == (GALAXY_DIR / "static" / "style.css").read_bytes()
    status, _, body = srv.get("/favicon.ico")
    assert status == 200 and body == (GALAXY_DIR / "static" / "favicon.ico").read_bytes()

    # thunder-lock and offload-threads: accepted, logged once each (by the master)
    log = srv.log_text()
    for name in ("thunder-lock", "offload-threads"):
        lines = [l for l in log.splitlines() if "'%s'" % name in l]
        assert len(lines) == 1, (name, log)
        assert re.search(r"galaxy\.yml:\d+: option '%s'.*accepted" % name, lines[0]), lines
    assert srv.stop() == 0


def test_galaxy_yml_print_config_from_any_cwd(tmp_path):
    """The example as shipped: every path hangs on %d, so the options are
    the same whatever the working directory and however the file is named."""
    outs = [
        print_config(["--yaml", str(GALAXY_YML)], cwd="/"),
        print_config(["--yml", os.path.relpath(GALAXY_YML, tmp_path)], cwd=tmp_path),
        print_config(["examples/galaxy.yml"], cwd=REPO),  # a bare file argument
    ]
    assert outs[0] == outs[1] == outs[2]
    lines = option_lines(outs[0])
    real_dir = os.path.realpath(GALAXY_DIR)
    assert "http = 127.0.0.1:8080" in lines
    assert "chdir = %s" % real_dir in lines
    assert "galaxy_config_file = %s" % os.path.realpath(GALAXY_YML) in lines
    assert "module = galaxy_app:uwsgi_app()" in lines
    assert lines.count("mule = lib/galaxy_mule.py") == 2
    assert "umask = 027" in lines
    assert not any(l.startswith("virtualenv") for l in lines)
    for rel in ("lib/galaxy_app.py", "lib/galaxy_mule.py", "static/style.css", "static/favicon.ico"):
        assert (GALAXY_DIR / rel).is_file(), rel


def test_cli_http_adds_to_the_files_http(server, tmp_path):
    """http is repeatable: the command line adds a listener, it does not
    replace the file's (which is why the Galaxy test rewrites its copy)."""
    p_file, p_cli = free_port_number(), free_port_number()
    ini = write(tmp_path / "two.ini", "[uwsgi]\nhttp = 127.0.0.1:%d\nwsgi-file = %s\n" % (p_file, UAPP))
    lines = option_lines(print_config(["--ini", ini, "--http", "127.0.0.1:%d" % p_cli]))
    assert [l for l in lines if l.startswith("http ")] == [
        "http = 127.0.0.1:%d" % p_file,
        "http = 127.0.0.1:%d" % p_cli,
    ]
    srv = server(["--ini", str(ini), "--http", "127.0.0.1:%d" % p_cli], addr=("127.0.0.1", p_cli))
    d = srv.get_json("/")
    assert plain(d["opt"])["http"] == [b"127.0.0.1:%d" % p_file, b"127.0.0.1:%d" % p_cli]
    srv.addr = ("127.0.0.1", p_file)
    assert srv.get_json("/")["opt"] == d["opt"]  # the file's listener answers too


# ---------------------------------------------------------------------------
# (b) one option set, four formats


def four_way_options(tmp_path):
    pp = [tmp_path / ("pp%d" % i) for i in range(3)]
    for p in pp:
        p.mkdir()
    return [
        ("wsgi-file", UAPP),
        ("pythonpath", str(pp[0])),
        ("master", None),  # a bare flag
        ("static-map", "/s1=%s" % tmp_path),
        ("buffer-size", "8192"),
        ("pythonpath", str(pp[1])),  # repeated, not next to the first
        ("static-index", "my index.html"),  # a space inside
        ("socket-timeout", "7"),
        ("static-map", "/s2=%s/pp0" % tmp_path),
        ("pp", str(pp[2])),  # an alias stays its own key, as in uWSGI
        ("callable", "application"),
    ]


def as_cli(pairs):
    out = []
    for k, v in pairs:
        out += ["--" + k] if v is None else ["--" + k, v]
    return out


def as_ini(pairs):
    return "[uwsgi]\n" + "".join(k + "\n" if v is None else "%s = %s\n" % (k, v) for k, v in pairs)


def as_yaml(pairs):
    # repeated keys written as repeated keys, in order (Galaxy's style);
    # values double-quoted (JSON strings are YAML), the flag a YAML null
    lines = ["uwsgi:"]
    for k, v in pairs:
        lines.append("  %s:" % k if v is None else "  %s: %s" % (k, json.dumps(v)))
    return "other:\n  ignored: [1, 2]\n" + "\n".join(lines) + "\n"


def as_json(pairs):
    # repeated keys as arrays; the bare flag cannot be written in JSON
    section = {}
    for k, v in pairs:
        v = True if v is None else v
        if k in section:
            old = section[k]
            section[k] = (old if isinstance(old, list) else [old]) + [v]
        else:
            section[k] = v
    return json.dumps({"uwsgi": section, "other": {"nested": {"x": [1]}}}, indent=2)


def test_same_options_in_four_formats(server, tmp_path):
    pairs = four_way_options(tmp_path)
    variants = {
        "cli": (as_cli(pairs), None),
        "ini": (["--ini", write(tmp_path / "c.ini", as_ini(pairs))], "ini"),
        "yaml": (["--yaml", write(tmp_path / "c.yaml", as_yaml(pairs))], "yaml"),
        "json": (["--json", write(tmp_path / "c.json", as_json(pairs))], "json"),
    }
    opts = {}
    for name, (args, file_key) in variants.items():
        srv = server(args)
        opt = plain(srv.get_json("/")["opt"])
        srv.stop()
        assert opt.pop("http-socket") == b"127.0.0.1:%d" % srv.port  # the fixture's
        if file_key:
            assert opt.pop(file_key) == str(args[1]).encode()
        opts[name] = opt

    expected = {}
    for k, v in pairs:
        v = True if v is None else v.encode()
        if k in expected:
            old = expected[k]
            expected[k] = (old if isinstance(old, list) else [old]) + [v]
        else:
            expected[k] = v
    expected.update({"processes": b"1", "threads": b"2"})  # the fixture's defaults
    assert opts["cli"] == expected
    assert opts["ini"] == expected
    assert opts["yaml"] == expected
    # JSON's true is "1": the only difference
    assert opts["json"] == dict(expected, master=b"1")


# ---------------------------------------------------------------------------
# (c) errors


def test_unknown_cli_option_suggests_the_nearest(tmp_path):
    err = config_error(["--wsgi-file", UAPP, "--procesess", "2"])
    assert "unknown option --procesess" in err
    assert "did you mean --processes?" in err
    err = config_error(["--wsgi-file", UAPP, "--theads=4"])
    assert "unknown option --theads" in err and "did you mean --threads?" in err
    # no suggestion when nothing is near
    err = config_error(["--wsgi-file", UAPP, "--frobnicate-everything"])
    assert "unknown option --frobnicate-everything" in err and "did you mean" not in err


def test_unsupported_uwsgi_option(tmp_path):
    err = config_error(["--wsgi-file", UAPP, "--lazy-apps"])
    assert "lazy-apps" in err and "not supported by mulefarm" in err
    ini = write(tmp_path / "lazy.ini", "[uwsgi]\nwsgi-file = %s\nlazy-apps = true\n" % UAPP)
    err = config_error(["--ini", ini])
    assert "%s:3: option 'lazy-apps' is not supported by mulefarm" % ini in err
    yml = write(tmp_path / "lazy.yml", "uwsgi:\n  master: true\n  lazy-apps: true\n")
    err = config_error([yml])
    assert "%s:3: option 'lazy-apps' is not supported by mulefarm" % yml in err


def test_thunder_lock_accepted_and_logged_once(configured_server, tmp_path):
    ini = write(tmp_path / "tl.ini", "[uwsgi]\nwsgi-file = %s\nthunder-lock = true\nprocesses = 2\n" % UAPP)
    srv = configured_server(["--ini", str(ini)])
    d = srv.get_json("/")
    assert d["numproc"] == 2
    assert plain(d["opt"])["thunder-lock"] == b"true"
    lines = [l for l in srv.log_lines() if "thunder-lock" in l]
    assert len(lines) == 1, srv.log_text()
    assert "%s:3: option 'thunder-lock'" % ini in lines[0] and "accepted" in lines[0]
    # from the command line, as a bare flag
    p = run(["--wsgi-file", UAPP, "--thunder-lock", "--print-config"])
    assert p.returncode == 0, p.stderr
    assert "thunder-lock" in option_lines(p.stdout)
    assert len([l for l in p.stderr.splitlines() if "thunder-lock" in l]) == 1


def test_bad_integer_in_ini_names_file_line_and_value(tmp_path):
    ini = write(tmp_path / "bad.ini", "[uwsgi]\nwsgi-file = %s\n\n; workers\nprocesses = two\n" % UAPP)
    err = config_error(["--ini", ini])
    assert "%s:5:" % ini in err
    assert "processes" in err and "'two'" in err
    # through a placeholder: still the line of the option
    ini = write(tmp_path / "bad2.ini", "[uwsgi]\nn = 4x\nthreads = %(n)\n")
    err = config_error(["--ini", ini])
    assert "%s:3:" % ini in err and "threads" in err and "'4x'" in err


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    yml = write(tmp_path / "syn.yml", "uwsgi:\n  master: true\n  http: [127.0.0.1:9\n  threads: 2\n")
    err = config_error(["--yaml", yml])
    m = re.search(re.escape(str(yml)) + r":(\d+): ", err)
    assert m, err
    assert int(m.group(1)) in (3, 4), err
    yml = write(tmp_path / "tab.yml", "uwsgi:\n  master: true\n\tthreads: 2\n")
    err = config_error(["--yaml", yml])
    assert "%s:3:" % yml in err


def test_unknown_magic_variable(tmp_path):
    ini = write(tmp_path / "m.ini", "[uwsgi]\nwsgi-file = %s\nlogto = /tmp/%%Q.log\n" % UAPP)
    err = config_error(["--ini", ini])
    assert "%s:3:" % ini in err
    assert "unknown magic variable %Q" in err
    # magic variables need a file: on the command line %d is an error
    err = config_error(["--wsgi-file", UAPP, "--set-placeholder", "here=%d"])
    assert "needs a config file" in err


def test_expansion_visible_in_uwsgi_opt(server, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf / "secret.txt", "s3cr3t\n")
    ini = write(
        conf / "site.ini",
        "[uwsgi]\n"
        "wsgi-file = %s\n"
        "base = /srv/app\n"
        "from_placeholder = %%(base)/static\n"
        "from_cli_placeholder = %%(greeting), world\n"
        "from_env = $(MF_CONFIG_TEST)\n"
        "from_unset_env = [$(MF_CONFIG_TEST_UNSET)]\n"
        "from_file = @(secret.txt)\n"
        "from_magic = %%n.%%e in %%d\n"
        "percent = 100%%%%\n"
        "not_a_placeholder = %%%%(base)\n"
        "env_then_placeholder = $(MF_CONFIG_TEST_REF)\n" % UAPP,
    )
    srv = server(
        ["--set-placeholder", "greeting=hello", "--ini", str(ini), "--set", "setkey=%(base)!"],
        env={"MF_CONFIG_TEST": "from the env", "MF_CONFIG_TEST_REF": "%(base)"},
    )
    opt = plain(srv.get_json("/")["opt"])
    real_conf = os.path.realpath(conf)
    assert opt["base"] == b"/srv/app"
    assert opt["from_placeholder"] == b"/srv/app/static"
    assert opt["from_cli_placeholder"] == b"hello, world"
    assert opt["greeting"] == b"hello"
    assert opt["set-placeholder"] == b"greeting=hello"
    assert opt["from_env"] == b"from the env"
    assert opt["from_unset_env"] == b"[]"
    assert opt["from_file"] == b"s3cr3t"  # one trailing newline dropped
    assert opt["from_magic"] == ("site.ini in %s/" % real_conf).encode()
    assert opt["percent"] == b"100%"
    assert opt["not_a_placeholder"] == b"%(base)"
    assert opt["env_then_placeholder"] == b"/srv/app"  # $( before %(, as in uWSGI
    assert opt["setkey"] == b"/srv/app!"


def test_env_vars_set_options(configured_server):
    srv = configured_server(
        ["--wsgi-file", UAPP],
        env={"UWSGI_PROCESSES": "2", "MULEFARM_THREADS": "3", "UWSGI_NOT_AN_OPTION": "x"},
    )
    d = srv.get_json("/")
    assert d["numproc"] == 2
    opt = plain(d["opt"])
    assert opt["processes"] == b"2"
    assert opt["threads"] == b"3"
    assert "not-an-option" not in opt and "not_an_option" not in opt
    lines = option_lines(print_config(["--wsgi-file", UAPP], env={"MULEFARM_THREADS": "3", "UWSGI_BUFFER_SIZE": "9000"}))
    assert "threads = 3" in lines and "buffer-size = 9000" in lines
    assert "threads = 4" not in lines  # no default printed for a given option
    err = config_error(["--wsgi-file", UAPP], env={"MULEFARM_THREADS": "lots"})
    assert "threads" in err and "'lots'" in err


def test_cli_beats_file_whatever_the_order(configured_server, tmp_path):
    ini = write(tmp_path / "p.ini", "[uwsgi]\nwsgi-file = %s\nprocesses = 2\nthreads = 1\n" % UAPP)
    assert configured_server(["--ini", str(ini)]).get_json("/")["numproc"] == 2
    for args in (["--processes", "1", "--ini", str(ini)], ["--ini", str(ini), "--processes", "1"]):
        srv = configured_server(args)
        d = srv.get_json("/")
        assert d["numproc"] == 1, args
        srv.stop()
    # and a file beats the environment
    srv = configured_server(["--ini", str(ini)], env={"UWSGI_PROCESSES": "3"})
    assert srv.get_json("/")["numproc"] == 2


def test_print_config_round_trip(tmp_path):
    """--print-config output fed back through --ini gives the same options,
    in the same order; fed back again it gives the very same text."""
    first = print_config(
        ["--yaml", GALAXY_YML, "--set-placeholder", "greeting=hello world", "--pp", "/opt/x"],
        env={"MULEFARM_LISTEN": "64"},
    )
    p1 = write(tmp_path / "p1.ini", first)
    second = print_config(["--ini", p1])
    assert option_lines(second) == option_lines(first)
    p2 = write(tmp_path / "p2.ini", second)
    third = print_config(["--ini", p2])
    assert third == second
    lines = option_lines(first)
    assert lines[0] == "[uwsgi]"
    assert "listen = 64" in lines and "greeting = hello world" in lines and "pp = /opt/x" in lines
    assert "galaxy_config_file = %s" % os.path.realpath(GALAXY_YML) in lines
    assert not any(l.split(" ")[0] in ("yaml", "set-placeholder", "print-config") for l in lines)


def test_section_selection_in_each_format(tmp_path):
    ini = write(tmp_path / "s.ini", "[uwsgi]\nthreads = 1\n[other]\nthreads = 7\n[other]\nlisten = 9\n")
    yml = write(tmp_path / "s.yml", "uwsgi:\n  threads: 1\nother:\n  threads: 7\n  listen: 9\n")
    jsn = write(tmp_path / "s.json", '{"uwsgi": {"threads": 1}, "other": {"threads": 7, "listen": 9}}')
    for flag, path in (("--ini", ini), ("--yaml", yml), ("--json", jsn)):
        lines = option_lines(print_config([flag, "%s:other" % path]))
        assert "threads = 7" in lines and "listen = 9" in lines, (flag, lines)
        err = config_error([flag, "%s:missing" % path])
        assert "%s: no 'missing' section" % path in err


# ---------------------------------------------------------------------------
# (d) YAML is real YAML


def test_yaml_unquotes_values_unlike_uwsgis_line_reader(server, tmp_path):
    """uWSGI's line-by-line YAML reader would hand the app b"'a b'" (quotes
    kept) and cut `'x # y'` at the '#'; mulefarm's YAML is YAML, as Galaxy's
    PyYAML reads the same file. INI keeps quotes in both servers."""
    yml = write(
        tmp_path / "q.yml",
        "uwsgi:\n"
        "  wsgi-file: %s\n"
        "  quoted: 'a b'\n"
        '  dquoted: "c\\td"\n'
        "  hashed: 'x # y'\n"
        "  plain: v # a comment\n"
        "  number: 027\n"
        "  yes_word: yes\n" % json.dumps(UAPP),
    )
    ini = write(tmp_path / "q.ini", "[uwsgi]\niquoted = 'a b'\n")
    srv = server(["--yaml", str(yml), "--ini", str(ini)])
    opt = plain(srv.get_json("/")["opt"])
    assert opt["quoted"] == b"a b"
    assert opt["dquoted"] == b"c\td"
    assert opt["hashed"] == b"x # y"
    assert opt["plain"] == b"v"
    assert opt["number"] == b"027"  # scalars stay their text
    assert opt["yes_word"] == b"yes"
    assert opt["iquoted"] == b"'a b'"


def test_placeholder_may_name_a_later_option(tmp_path):
    """%(name) takes the first value of <name> expanded, even when <name>
    comes later in the file (uWSGI expands once the whole list is built)."""
    ini = write(tmp_path / "fwd.ini", "[uwsgi]\npa = %(pb)\npb = %d\npc = %(pb)\n")
    lines = option_lines(print_config(["--ini", ini]))
    d = str(tmp_path) + "/"
    assert "pa = %s" % d in lines and "pb = %s" % d in lines and "pc = %s" % d in lines


def test_magic_x_names_the_section_read(tmp_path):
    ini = write(tmp_path / "sec.ini", "[dev]\nwhere = %x\n")
    assert "where = sec.ini:dev" in option_lines(print_config(["--ini", "%s:dev" % ini]))
    yml = write(tmp_path / "sec.yml", "uwsgi:\n  where: '%x'\n")
    assert "where = sec.yml:uwsgi" in option_lines(print_config(["--yaml", yml]))


def test_include_name_is_expanded_when_read(tmp_path):
    write(tmp_path / "common.ini", "[uwsgi]\nthreads = 3\n")
    main = write(tmp_path / "main.ini", "[uwsgi]\nini = %dcommon.ini\n")
    assert "threads = 3" in option_lines(print_config(["--ini", main]))


def test_misspelt_file_key_is_logged_and_kept(tmp_path):
    ini = write(tmp_path / "typo.ini", "[uwsgi]\nprocesess = 3\n")
    p = run(["--ini", ini, "--print-config"])
    assert p.returncode == 0
    assert "typo.ini:2" in p.stderr and "did you mean 'processes'" in p.stderr
    assert "procesess = 3" in option_lines(p.stdout)
