"""A small Flask app (python3-flask) served through mulefarm."""
from flask import Flask, abort, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.route("/")
def index():
    return "flask index"


@app.route("/api/item/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, q=request.args.get("q"), method=request.method)


@app.route("/api/echo", methods=["POST"])
def echo_json():
    data = request.get_json()
    return jsonify(received=data), 201


@app.route("/form", methods=["GET", "POST"])
def form():
    if request.method == "GET":
        return '<form method="post"><input name="name"></form>'
    return jsonify(name=request.form.get("name"), tags=request.form.getlist("tag"))


@app.route("/old")
def old():
    return redirect(url_for("new"))


@app.route("/new")
def new():
    return "new page"


@app.route("/forbidden")
def forbidden():
    abort(403)


application = app
