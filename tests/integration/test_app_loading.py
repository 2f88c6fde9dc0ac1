"""How the app is found: --wsgi-file, --callable, --module (callable and
factory()), --pythonpath (globs), --chdir, --virtualenv/--home."""
import os
import subprocess

import pytest

from conftest import APPS, app_path


@pytest.mark.smoke
def test_wsgi_file(server):
    srv = server(["--wsgi-file", app_path("basic.py")])
    assert srv.get("/")[2] == b"hello\n"


def test_callable_option(server):
    srv = server(["--wsgi-file", app_path("basic.py"), "--callable", "alt_app"])
    assert srv.get("/")[2] == b"alt callable\n"


def test_module_default_callable(server):
    srv = server(["--module", "modpkg.wsgimod", "--pythonpath", str(APPS)])
    assert srv.get("/")[2] == b"default application from modpkg.wsgimod"


def test_module_with_callable(server):
    srv = server(["--module", "modpkg.wsgimod:named_app", "--pythonpath", str(APPS)])
    assert srv.get("/")[2] == b"named_app from modpkg.wsgimod"


def test_module_with_callable_option(server):
    srv = server(["--module", "modpkg.wsgimod", "--callable", "named_app", "--pythonpath", str(APPS)])
    assert srv.get("/")[2] == b"named_app from modpkg.wsgimod"


def test_module_factory(server):
    srv = server(["--module", "modpkg.wsgimod:make_app()", "--pythonpath", str(APPS), "--processes", "2"])
    for _ in range(4):
        status, _, body = srv.get("/")
        assert status == 200
        # called once, in the master, before fork
        assert body == b"made by factory (calls=1)"


def test_module_factory_not_called_without_parens(server):
    # without (), make_app itself is the WSGI callable: calling it with
    # (environ, start_response) raises TypeError -> 500
    srv = server(["--module", "modpkg.wsgimod:make_app", "--pythonpath", str(APPS)])
    assert srv.get("/")[0] == 500


def test_pythonpath_glob(server, tmp_path):
    libs = tmp_path / "libs"
    for name in ("lib_alpha", "lib_beta"):
        d = libs / name
        d.mkdir(parents=True)
        (d / ("mod_%s.py" % name)).write_text("VALUE = %r\n" % name)
    (libs / "other").mkdir()
    (libs / "other" / "mod_other.py").write_text("VALUE = 'other'\n")
    app = tmp_path / "globapp.py"
    app.write_text(
        "import mod_lib_alpha, mod_lib_beta\n"
        "try:\n"
        "    import mod_other\n"
        "    OTHER = b'other-importable'\n"
        "except ImportError:\n"
        "    OTHER = b'other-not-importable'\n"
        "def application(environ, start_response):\n"
        "    body = (mod_lib_alpha.VALUE + ',' + mod_lib_beta.VALUE + ',').encode() + OTHER\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [body]\n"
    )
    srv = server(["--wsgi-file", str(app), "--pythonpath", str(libs / "lib_*")])
    assert srv.get("/")[2] == b"lib_alpha,lib_beta,other-not-importable"


def test_pythonpath_repeated(server, tmp_path):
    for name in ("pa", "pb"):
        d = tmp_path / name
        d.mkdir()
        (d / ("m_%s.py" % name)).write_text("V = %r\n" % name)
    app = tmp_path / "rep.py"
    app.write_text(
        "import m_pa, m_pb\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [(m_pa.V + m_pb.V).encode()]\n"
    )
    srv = server(["--wsgi-file", str(app), "--pythonpath", str(tmp_path / "pa"), "--pythonpath", str(tmp_path / "pb")])
    assert srv.get("/")[2] == b"papb"


def test_chdir(server, tmp_path):
    d = tmp_path / "workdir"
    d.mkdir()
    srv = server(["--wsgi-file", app_path("basic.py"), "--chdir", str(d)])
    assert os.path.realpath(srv.get_json("/cwd")["cwd"]) == os.path.realpath(str(d))


def test_chdir_then_relative_wsgi_file(server, tmp_path):
    d = tmp_path / "appdir"
    d.mkdir()
    (d / "app.py").write_text(
        "import os\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [('cwd=' + os.getcwd()).encode()]\n"
    )
    srv = server(["--chdir", str(d), "--wsgi-file", "app.py"])
    body = srv.get("/")[2].decode()
    assert os.path.realpath(body[4:]) == os.path.realpath(str(d))


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run(
        ["/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip", str(root)],
        check=True,
        timeout=60,
    )
    sps = list(root.glob("lib/python3*/site-packages"))
    assert sps, "venv has no site-packages"
    (sps[0] / "mf_venv_only_mod.py").write_text("WHERE = 'inside the venv'\n")
    return root


VENV_APP = (
    "import sys, json, mf_venv_only_mod\n"
    "def application(environ, start_response):\n"
    "    body = json.dumps({'prefix': sys.prefix, 'where': mf_venv_only_mod.WHERE,\n"
    "                       'file': mf_venv_only_mod.__file__}).encode()\n"
    "    start_response('200 OK', [('Content-Type', 'application/json')])\n"
    "    return [body]\n"
)


@pytest.mark.parametrize("opt", ["--virtualenv", "--home"])
def test_virtualenv(server, tmp_path, venv, opt):
    app = tmp_path / "venvapp.py"
    app.write_text(VENV_APP)
    srv = server(["--wsgi-file", str(app), opt, str(venv)])
    d = srv.get_json("/")
    assert d["where"] == "inside the venv"
    assert os.path.realpath(d["prefix"]) == os.path.realpath(str(venv))
    assert os.path.realpath(d["file"]).startswith(os.path.realpath(str(venv)))


def test_virtualenv_keeps_system_site_packages(server, tmp_path, venv):
    app = tmp_path / "venvflask.py"
    app.write_text(
        "import flask, mf_venv_only_mod\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'flask ok']\n"
    )
    srv = server(["--wsgi-file", str(app), "--virtualenv", str(venv)])
    assert srv.get("/")[2] == b"flask ok"


def test_without_virtualenv_module_not_importable(server, tmp_path, venv):
    app = tmp_path / "novenv.py"
    app.write_text(VENV_APP)
    srv = server(["--wsgi-file", str(app)], wait=False)
    assert srv.wait_exit(10) != 0
