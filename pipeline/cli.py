"""The ``callqa`` command line (DESIGN.md, "Command line").

Each sub-command lives beside the stage it drives and is imported only when it is used,
so ``callqa calls`` does not pay for loading faster-whisper or torch.
Exit status 0 on success; non-zero with a one-line reason on stderr on failure.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "transcribe": "pipeline.transcribe.cli:transcribe",
    "score": "pipeline.score.cli:score",
    "run": "pipeline.run_cli:run",
    "calls": "pipeline.store.cli:calls",
    "rescore": "pipeline.store.cli:rescore",
    "rubric": "pipeline.scripts_check.cli:rubric",
    "redact": "pipeline.redact.cli:redact",
    "diarize": "pipeline.transcribe.diarize.cli:diarize",
    "agents": "pipeline.transcribe.diarize.cli:agents",
    "train": "pipeline.score.risk_cli:train",
    "users": "pipeline.app.cli:users",
    "serve": "pipeline.app.cli:serve",
    "coach": "pipeline.reports.cli:coach",
    "report": "pipeline.reports.cli:report",
    "schema": "pipeline.schema_cli:schema",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._importable(name))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # feature not installed in this build
            raise
        return getattr(module, attr)

    @staticmethod
    def _importable(name: str) -> bool:
        module_name = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is not None and (
            importlib.util.find_spec(module_name) is not None
        )


class CallqaError(click.ClickException):
    """A failure the user can act on: printed as one line on stderr, exit status 1."""

    def show(self, file=None) -> None:  # noqa: D102 - one line, no usage banner
        click.echo(f"callqa: error: {self.format_message()}", err=True)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="callqa")
def cli() -> None:
    """callqa: quality inspection and speech analytics for call centres."""


def main(argv: list[str] | None = None) -> int:
    from pipeline.allocator import AllocatorError, preload
    from pipeline.config import enforce_offline
    from pipeline.cpu_isa import CpuIsaError, apply_cpu_isa_from_env

    # Before any sub-command imports numpy, ctranslate2 or a model library.
    try:
        apply_cpu_isa_from_env()
        if argv is None:  # the process's own entry point (not a test calling main)
            preload()
    except (CpuIsaError, AllocatorError) as exc:
        click.echo(f"callqa: error: {exc}", err=True)
        return 2
    enforce_offline()
    try:
        # Without standalone mode click *returns* the code of an ``Exit`` raised inside a
        # command (``callqa run`` stopped: 1) instead of raising it; dropping it exited 0.
        code = cli.main(args=argv, prog_name="callqa", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("callqa: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return code if type(code) is int else 0


if __name__ == "__main__":
    sys.exit(main())
