"""The ``carehub`` command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from app.context import build_context, get_context
from app.embedded_redis import EmbeddedRedis
from app.settings import ConfigurationError, get_settings
from connectors.cli import connectors_app, sandbox_app

cli = typer.Typer(help="CareHub: the integration hub for care homes.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema.")
users_cli = typer.Typer(help="User accounts.")
secrets_cli = typer.Typer(help="Encrypted credentials.")
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(secrets_cli, name="secrets")
cli.add_typer(connectors_app, name="connectors")
cli.add_typer(sandbox_app, name="sandbox")


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to the newest schema."""
    from storage.migrate import upgrade

    upgrade(get_settings().effective_database_url, revision)
    typer.echo("database is at " + revision)


@users_cli.command("create")
def users_create(email: str, role: str = typer.Option("manager", help="manager, onboarding or admin"),
                 password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
                 name: str = "") -> None:
    """Create a user."""
    from storage.users import UserError, create_user

    try:
        with get_context().db.session() as session:
            user = create_user(session, email=email, password=password, role=role, name=name, actor="cli")
            typer.echo(f"created {user.email} ({user.role})")
    except UserError as exc:
        _fail(str(exc))


@users_cli.command("token")
def users_token(email: str, name: str = "cli") -> None:
    """Issue an API bearer token for a user (printed once)."""
    from sqlmodel import select

    from storage.models import User
    from storage.users import issue_token

    with get_context().db.session() as session:
        user = session.exec(select(User).where(User.email == email.lower())).first()
        if user is None:
            _fail(f"no user {email}")
            return
        typer.echo(issue_token(session, user, name))


@secrets_cli.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored credential under the newest key in CAREHUB_SECRET_KEYS (safe to re-run)."""
    from storage.secrets import rotate_all

    ctx = get_context()
    report = rotate_all(ctx.db, ctx.box)
    typer.echo(f"rotated {report.rotated}, already current {report.already_current}")


@cli.command("web")
def web() -> None:
    """Serve the web app (pages and /api/v1) in this process."""
    from app.web import serve

    serve()


@cli.command("worker")
def worker(burst: bool = False) -> None:
    """Run one arq worker in this process."""
    from arq.worker import run_worker

    from app.worker import WorkerSettings

    run_worker(WorkerSettings, burst=burst)  # type: ignore[arg-type]


@cli.command("run")
def run() -> None:
    """Everything for one machine: embedded Redis (unless CAREHUB_REDIS_URL), migrations, web and a worker."""
    try:
        settings = get_settings()
        ctx = build_context(settings)
    except ConfigurationError as exc:
        _fail(str(exc))
        return
    embedded: EmbeddedRedis | None = None
    env = dict(os.environ)
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        env["CAREHUB_REDIS_URL"] = embedded.start()
        typer.echo(f"embedded Redis on {embedded.url}")
    from storage.migrate import upgrade
    from storage.users import ensure_admin

    upgrade(settings.effective_database_url)
    with ctx.db.session() as session:
        admin, password = ensure_admin(session, settings.admin_email, settings.admin_password or None)
    _print_login(settings.port, admin.email, password, settings.data_dir)
    children = [
        subprocess.Popen([sys.executable, "-m", "app", "web"], env=env),
        subprocess.Popen([sys.executable, "-m", "app", "worker"], env=env),
    ]
    _supervise(children, embedded)


def _print_login(port: int, email: str, password: str | None, data_dir: Path) -> None:
    note = data_dir / "admin-login.txt"
    if password:
        note.write_text(f"email: {email}\npassword: {password}\n")
        note.chmod(0o600)
    shown = password or (note.read_text().split("password: ")[-1].strip() if note.exists() else "(as set before)")
    typer.secho(f"\nCareHub is starting at http://localhost:{port}\n  admin login: {email}\n  password:    {shown}\n",
                fg=typer.colors.GREEN)


def _supervise(children: list[subprocess.Popen[bytes]], embedded: EmbeddedRedis | None) -> None:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded is not None:
            embedded.stop()
        typer.echo("CareHub stopped.")


def main() -> None:
    """Console-script entry point."""
    cli()
