"""``callqa users ...`` (accounts of the review app) and ``callqa serve``."""

from __future__ import annotations

import sys

import click

from pipeline.cli import CallqaError

ROLE_CHOICE = click.Choice(["admin", "reviewer", "trainer", "agent", "team_lead", "manager"])
db_option = click.option("--db", "db_url", default=None, help="Database URL (default: QA_DATABASE_URL or sqlite:///var/callqa.db).")  # fmt: skip


def _reviews(db_url: str | None):
    from pipeline.store import StoreError, open_store
    from pipeline.store.review import ReviewStore

    try:
        return ReviewStore(open_store(db_url))
    except StoreError as exc:
        raise CallqaError(str(exc)) from None


@click.group()
def users() -> None:
    """Accounts of the review app (roles: admin, reviewer, trainer, agent, team_lead, manager)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, required=True)
@click.option("--agent-id", default=None, help="For agents: the agent_id of their calls.")
@click.option("--team", "teams", multiple=True, help="For team leads: a team they lead (repeat).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@db_option
def users_add(
    name: str,
    role: str,
    agent_id: str | None,
    teams: tuple[str, ...],
    password_stdin: bool,
    db_url: str | None,
) -> None:
    """Add an account NAME with a password (argon2-hashed)."""
    from pipeline.store.review import ReviewError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise CallqaError("give the password with --password-stdin")
    try:
        user = _reviews(db_url).add_user(name, password, role, agent_id, teams)
    except ReviewError as exc:
        raise CallqaError(str(exc)) from None
    who = ", ".join([user.role, *([user.agent_id] if user.agent_id else []), *user.teams])
    click.echo(f"added {user.username} ({who})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@db_option
def users_list(as_json: bool, db_url: str | None) -> None:
    """List accounts."""
    import json

    rows = _reviews(db_url).list_users()
    if as_json:
        click.echo(json.dumps([u.model_dump() for u in rows], ensure_ascii=False, indent=2))
        return
    for u in rows:
        state = "" if u.active else " (inactive)"
        click.echo(f"{u.username}\t{u.role}\t{u.agent_id or ','.join(u.teams)}{state}")


@users.command("token")
@click.argument("name")
@db_option
def users_token(name: str, db_url: str | None) -> None:
    """Issue a new API token for NAME (printed once; the previous token stops working)."""
    from pipeline.store.review import ReviewError

    try:
        click.echo(_reviews(db_url).issue_token(name))
    except ReviewError as exc:
        raise CallqaError(str(exc)) from None


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@db_option
def users_passwd(name: str, password_stdin: bool, db_url: str | None) -> None:
    """Set a new password for NAME (every signed-in session of NAME ends)."""
    from pipeline.store.review import ReviewError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    else:
        raise CallqaError("give the password with --password-stdin")
    try:
        _reviews(db_url).set_password(name, password)
    except ReviewError as exc:
        raise CallqaError(str(exc)) from None
    click.echo(f"new password set for {name}; their sessions ended")


@users.command("disable")
@click.argument("name")
@db_option
def users_disable(name: str, db_url: str | None) -> None:
    """Deactivate NAME (sessions and tokens stop working at once)."""
    from pipeline.store.review import ReviewError

    try:
        _reviews(db_url).set_active(name, False)
    except ReviewError as exc:
        raise CallqaError(str(exc)) from None
    click.echo(f"disabled {name}")


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--var-dir", default="var", show_default=True, help="Secret key and audio cache.")
@click.option("--https-only", is_flag=True, help="Mark the session cookie Secure (behind TLS).")
@click.option(
    "--rubrics-dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Rubric files the calibration page reads and a rubric owner's acceptance rewrites "
    "(default: the shipped rubrics/).",
)
def serve(
    db_url: str | None,
    host: str,
    port: int,
    var_dir: str,
    https_only: bool,
    rubrics_dir: str | None,
) -> None:
    """Run the review web app (``/healthz`` answers 200).

    Behind a reverse proxy, ``QA_TRUSTED_PROXIES`` names the proxies whose
    ``X-Forwarded-For`` gives the client's address (else every user would share the
    proxy's address, and its login throttle)."""
    import uvicorn

    from pipeline.app.main import create_app
    from pipeline.app.security import trusted_proxies
    from pipeline.config import AppSettings, settings_from
    from pipeline.store import StoreError

    try:
        trusted = settings_from(model=AppSettings).trusted_proxies
        trusted = trusted_proxies(trusted) if trusted is not None else None
        app = create_app(db_url, var_dir=var_dir, https_only=https_only, rubrics_dir=rubrics_dir)
    except (StoreError, ValueError) as exc:
        raise CallqaError(str(exc)) from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=trusted is not None,
        forwarded_allow_ips=trusted or "",
    )
