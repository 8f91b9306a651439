"""``houqin check``, ``houqin config`` and ``houqin version``: what this site's files and settings say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from assembly.cli.common import inventory_or_exit, rules_or_exit
from houqin import __version__
from houqin.settings import Settings, masked_settings
from rules.loader import applies, inactive_rules, rule_files


def check(
    path: Annotated[Path | None, typer.Argument(help="Inventory file (default: setting inventory)")] = None,
    extra_rules: Annotated[
        list[Path] | None, typer.Option("--rules", help="Site rule file to check too (besides setting rule_files)")
    ] = None,
) -> None:
    """Validate the inventory and the rule files (shipped and site); print a summary, or every error with
    file:line: path (exit 1)."""
    settings = Settings()
    inventory_path = path or settings.inventory
    inventory = inventory_or_exit(inventory_path)
    extra = extra_rules or []
    rules = rules_or_exit(settings, inventory, extra)
    typer.echo(f"{inventory_path}: OK — {inventory.site.name}")
    for key, count in inventory.summary().items():
        typer.echo(f"  {key:<22} {count}")
    watched = sum(applies(rule, device, inventory) for rule in rules for device in inventory.devices.values())
    files = rule_files(settings.rule_files, extra)
    typer.echo(f"rules: OK — {len(rules)} rules from {len(files)} file(s), {watched} device watches")
    inactive = inactive_rules(rules, inventory)
    if inactive:
        typer.echo(f"  inactive (watch no device of this site): {', '.join(rule.id for rule in inactive)}")


def config() -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(masked_settings(Settings()), indent=2, ensure_ascii=False, default=str))


def version() -> None:
    """Print houqin's version."""
    typer.echo(__version__)
