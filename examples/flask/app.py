"""A small Flask app served by mulefarm (Debian: python3-flask).

    build/mulefarm --http-socket 127.0.0.1:8080 --processes 2 --threads 2 \
        --chdir examples/flask --module app:app
"""
from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(server="mulefarm", path=request.path, args=request.args)


@app.post("/echo")
def echo():
    return jsonify(form=request.form, length=request.content_length)


@app.get("/old")
def old():
    return redirect(url_for("index"))
