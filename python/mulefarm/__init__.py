"""mulefarm installed as a wheel: the server as the extension module
mulefarm._server, run by this interpreter from the console scripts
`mulefarm` and `mulefarm-handler` (see _cli.py).

Inside the server, `import mulefarm` is the server's API, as `import
uwsgi` is, with the same functions in both builds. With the binaries
(build/mulefarm) it is a built-in module; with the wheel it is this
package, and the server copies the API's names into it before it loads
the app. Outside the server the package has no API (as `import uwsgi`
fails outside uWSGI): `hasattr(mulefarm, "farm_msg")` tells.
"""
