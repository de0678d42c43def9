"""The call of a handler, prepared once per operation instead of on every request (issue #14 point 3).

connexion's FlaskOperation rebuilds its whole decorator chain on every request: a new FlaskDecorator, the
handler's signature read again with `inspect.signature`, new parameter and response wrappers and a new URI
parser, and then it works out every query parameter and default of the operation, although our handlers take
none of them (they read the query string themselves). `Operatie` builds that chain once, at the operation's
first request (the chain reads connexion's request-scoped `operation`, which is the same object for every
request to this route), and serves the requests our handlers are written for on a short path that uses
connexion's own functions for what it does keep:

- arguments: the path parameters, resolved and cast by connexion's URI parser and `_get_path_arguments`, and
  `body` where the handler takes one, read and defaulted by connexion's `get_body` and
  `_get_body_argument_json`;
- answer: a `(data, status, headers)` tuple whose headers name a Content-Type the operation produces is
  serialised with the API's jsonifier and built by connexion's `build_response`, which is what the response
  decorator does once its checks have passed.

Anything else (a handler with other arguments, a coroutine, another shape of answer, no Content-Type) goes
through connexion's chain as before, only built once. Request validation, security and routing stay in
connexion's middleware: nothing here checks or skips a check.
"""
from __future__ import annotations

import asyncio
import typing as t

import flask
from connexion.apps.flask import FlaskApi, FlaskASGIApp, FlaskOperation
from connexion.context import operation as huidige_operatie
from connexion.decorators import FlaskDecorator
from connexion.decorators.response import SyncResponseDecorator
from connexion.http_facts import FORM_CONTENT_TYPES
from connexion.decorators.parameter import _get_body_argument_json, _get_path_arguments, sanitized
from connexion.frameworks.flask import Flask as FlaskFramework
from connexion.lifecycle import WSGIRequest
from connexion.utils import inspect_function_arguments, is_json_mimetype


class Operatie(FlaskOperation):
    """connexion's FlaskOperation with the decorator chain built once and a short path for our handlers."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._aanroep: t.Callable | None = None

    def __call__(self, *args, **kwargs):
        aanroep = self._aanroep
        if aanroep is None:
            aanroep = self._aanroep = self._bouw()
        return aanroep(*args, **kwargs)

    def _bouw(self) -> t.Callable:
        spec_operatie = huidige_operatie._get_current_object()    # the request's operation: the same for every
        decorator = FlaskDecorator(pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)
        uri_parser = decorator.uri_parser
        keten = decorator.decorate(self._fn)

        def volledig(*args, **kwargs):
            # connexion's FlaskDecorator wrapper, with what it rebuilt per request built once
            return keten(FlaskFramework.get_request(uri_parser=uri_parser))

        argumenten, has_kwargs = inspect_function_arguments(self._fn)
        pad_namen = {p["name"] for p in spec_operatie.parameters if p["in"] == "path"}
        met_body = "body" in argumenten
        kort = (not has_kwargs and not self.pythonic_params and not asyncio.iscoroutinefunction(self._fn)
                and set(argumenten) <= {sanitized(naam) for naam in pad_namen} | {"body"}
                and (not met_body or spec_operatie.is_request_body_defined))
        if not kort:
            return volledig
        # the JSON media types the operation produces: an answer naming one of them takes the short path
        produceert_json = frozenset(ct for ct in spec_operatie.produces if is_json_mimetype(ct))
        jsonifier, functie = self.jsonifier, self._fn
        # connexion's response decorator for every other answer (a framework response, a ConnexionResponse,
        # another tuple, no Content-Type): whatever it makes of it, with its checks
        via_connexion = SyncResponseDecorator(framework=FlaskFramework, jsonifier=jsonifier)(lambda antwoord: antwoord)

        def snel(*args, **kwargs):
            request = WSGIRequest(flask.request._get_current_object(), uri_parser=uri_parser,
                                  view_args=flask.request.view_args)
            kwargs = _get_path_arguments(request.path_params, operation=spec_operatie, sanitize=sanitized)
            if met_body:
                # as connexion: a JSON body under the name the operation gives it (form bodies: connexion's path)
                if spec_operatie.body_name(request.content_type) == "body" and \
                        request.mimetype not in FORM_CONTENT_TYPES:
                    kwargs["body"] = _get_body_argument_json(request.get_body(), operation=spec_operatie,
                                                             content_type=request.mimetype)
                else:
                    return keten(request)
            request.files()     # as connexion: a form body is parsed (and held to Flask's form limits) even unused
            antwoord = functie(**kwargs)
            if type(antwoord) is tuple and len(antwoord) == 3 and type(antwoord[2]) is dict:
                data, status, headers = antwoord
                content_type = headers.get("Content-Type")
                if (content_type in produceert_json and type(status) is int and type(data) in (dict, list)
                        and not any(k != "Content-Type" and k.lower() == "content-type" for k in headers)):
                    return FlaskFramework.build_response(jsonifier.dumps(data), content_type=content_type,
                                                         status_code=status, headers=headers)
            return via_connexion(antwoord)

        return snel


class OperatieApi(FlaskApi):
    def make_operation(self, operation):
        return Operatie.from_operation(operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)


def installeer(middleware_app: FlaskASGIApp) -> None:
    """Let connexion's Flask app make `Operatie`s for every API added after this (connexion 3.3 has no option
    for the operation class: FlaskASGIApp.add_api builds a FlaskApi)."""

    def add_api(specification, *, name: str | None = None, **kwargs):
        api = OperatieApi(specification, **kwargs)
        if name is not None:
            middleware_app.app.register_blueprint(api.blueprint, name=name)
        else:
            middleware_app.app.register_blueprint(api.blueprint)
        return api

    middleware_app.add_api = add_api
