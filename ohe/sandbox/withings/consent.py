"""The authorize page (``GET/POST /oauth2_user/authorize2``) a browser clicks through (§1.2).

A real Withings login is replaced by a choice of sandbox user: an existing one, or a new one
created on the spot with ``consent_history_days`` of history. The buttons carry stable ids
(``#allow``, ``#deny``) and every input has an id, for headless-browser tests. Errors that make
the redirect target untrustworthy (unknown client, unregistered redirect_uri) render an error
page instead of redirecting, as OAuth2 requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, redirect, render_template_string, request

from .context import Sandbox
from .tables import SCOPES, TIMEZONES
from .tokens import issue_code, parse_scope, redirect_allowed
from .users import create_user, demo_user, get_user, list_users, valid_timezone

bp = Blueprint("withings_consent", __name__)

SCOPE_TEXT = {
    "user.info": "your profile and devices",
    "user.metrics": "your measurements: weight, body composition, blood pressure, ECG",
    "user.activity": "your activity, heart rate and sleep",
    "user.sleepevents": "your bed in / bed out events",
}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Withings sandbox - authorize {{ req.client_id }}</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; color: #222; }
 fieldset { margin: 1rem 0; border: 1px solid #ccc; border-radius: .4rem; }
 label { display: block; margin: .3rem 0; }
 button { font-size: 1rem; padding: .5rem 1.5rem; margin-right: 1rem; }
 #allow { background: #0a7; color: white; border: 0; } .error { color: #b00; }
</style></head>
<body><main>
<h1>Withings sandbox</h1>
{% if error %}<p class="error" id="error">{{ error }}</p>{% else %}
<p>The application <strong id="client">{{ req.client_id }}</strong> asks to access your data.</p>
<form id="consent" method="post" action="{{ action }}">
 {% for name, value in req.hidden().items() %}
 <input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
 <fieldset id="account"><legend>Sign in as</legend>
 {% if req.mode == "demo" %}
  <label><input type="radio" name="userid" value="demo" id="user-demo" checked>
   the demo user</label>
 {% else %}
  <label><input type="radio" name="userid" value="new" id="user-new" checked>
   a new sandbox user with {{ history_days }} days of history, time zone
   <select name="timezone" id="timezone"><option value="">automatic</option>
   {% for tz in timezones %}<option value="{{ tz }}">{{ tz }}</option>{% endfor %}</select></label>
  {% for u in users %}
  <label><input type="radio" name="userid" value="{{ u.userid }}" id="user-{{ u.userid }}">
   user {{ u.userid }} ({{ u.timezone }})</label>{% endfor %}
 {% endif %}
 </fieldset>
 <fieldset id="scopes"><legend>Permissions</legend>
 {% for s in req.scopes %}
  <label><input type="checkbox" name="grant" value="{{ s }}" id="scope-{{ s.replace('.', '-') }}"
   checked> {{ s }}: {{ scope_text[s] }}</label>{% endfor %}
 </fieldset>
 <button type="submit" id="allow" name="decision" value="allow">Allow</button>
 <button type="submit" id="deny" name="decision" value="deny">Deny</button>
</form>{% endif %}
</main></body></html>
"""


@dataclass(frozen=True)
class AuthorizeRequest:
    response_type: str
    client_id: str
    state: str
    scope: str
    redirect_uri: str
    mode: str

    @classmethod
    def from_values(cls, values: dict[str, str]) -> AuthorizeRequest:
        names = ("response_type", "client_id", "state", "scope", "redirect_uri", "mode")
        return cls(*(values.get(name, "").strip() for name in names))

    @property
    def scopes(self) -> list[str]:
        return parse_scope(self.scope) or []

    def hidden(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}

    def problem(self, sb: Sandbox) -> str | None:
        """Why this request cannot be served, or None."""
        checks = (
            (self.client_id == sb.config.client_id, f"unknown client_id {self.client_id!r}"),
            (redirect_allowed(sb, self.redirect_uri), "redirect_uri is not a registered URL"),
            (self.response_type == "code", "response_type must be 'code'"),
            (bool(self.state), "state is required"),
            (
                parse_scope(self.scope) is not None,
                f"invalid scope {self.scope!r} (comma list of {', '.join(SCOPES)})",
            ),
        )
        return next((message for ok, message in checks if not ok), None)


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` added to its query string (existing parameters are kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _page(sb: Sandbox, req: AuthorizeRequest, error: str | None = None) -> Response:
    html = render_template_string(
        PAGE,
        req=req,
        error=error,
        action=request.path,
        users=list_users(sb)[-50:],
        timezones=TIMEZONES,
        history_days=sb.config.consent_history_days,
        scope_text=SCOPE_TEXT,
    )
    return Response(html, status=400 if error else 200, mimetype="text/html")


@bp.get("/oauth2_user/authorize2")
def authorize_page() -> Response:
    sb: Sandbox = current_app.extensions["withings_sandbox"]
    req = AuthorizeRequest.from_values(request.args.to_dict())
    return _page(sb, req, req.problem(sb))


@bp.post("/oauth2_user/authorize2")
def authorize_decision() -> Response:
    sb: Sandbox = current_app.extensions["withings_sandbox"]
    req = AuthorizeRequest.from_values(request.form.to_dict())
    if problem := req.problem(sb):
        return _page(sb, req, problem)
    if request.form.get("decision") != "allow":
        target = with_query(req.redirect_uri, {"error": "access_denied", "state": req.state})
        return redirect(target, 302)
    granted = [s for s in req.scopes if s in request.form.getlist("grant")]
    if not granted:
        return _page(sb, req, "select at least one permission, or deny")
    choice = request.form.get("userid", "new")
    if req.mode == "demo":
        userid = demo_user(sb).userid
    elif choice == "new":
        timezone = request.form.get("timezone") or None
        if timezone is not None and not valid_timezone(timezone):
            return _page(sb, req, f"unknown time zone {timezone!r}")
        userid = create_user(sb, sb.config.consent_history_days, timezone).userid
    elif choice.isdigit() and get_user(sb, int(choice)) is not None:
        userid = int(choice)
    else:
        return _page(sb, req, f"unknown user {choice!r}")
    code = issue_code(sb, req.client_id, userid, req.redirect_uri, ",".join(granted))
    return redirect(with_query(req.redirect_uri, {"code": code, "state": req.state}), 302)
