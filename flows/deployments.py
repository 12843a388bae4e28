"""The deployments in ``prefect.yaml``, usable without a work pool (``tokenmill serve-flows``).

``prefect.yaml`` at the repository root is the one list of deployments: ``prefect deploy --all``
applies it for workers; this module reads the same file and turns each entry into
``flow.to_deployment(...)`` with the same parameters, schedules, triggers, tags and concurrency
limit, then ``prefect.serve(...)``s them all from one process. So the two ways of running a
scheduled tokenmill can never drift apart.

Served deployments are named ``serve`` (``fineweb/serve``), not ``default`` like the work-pool
deployments of ``prefect deploy --all``: both can be registered on the same server without one
replacing the other (a served ``fineweb/default`` used to overwrite the work-pool deployment,
and the next worker run crashed). Event triggers are rewritten accordingly: ``dedup/serve`` runs
when a ``fineweb/serve`` run completes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"
#: the deployment name of everything ``tokenmill serve-flows`` registers
SERVE_NAME = "serve"


@dataclass
class DeploymentSpec:
    """One ``deployments:`` entry of prefect.yaml."""

    name: str
    entrypoint: str  # "flows/fineweb.py:stage_read_flow", relative to the repository root
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    concurrency_limit: int | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.entrypoint.split(":", 1)[0]

    def load_flow(self):
        """The Prefect flow object behind the entrypoint (imports its module)."""
        from prefect.flows import load_flow_from_entrypoint

        cwd = os.getcwd()
        os.chdir(REPO_ROOT)  # entrypoints are relative to the repository root, like the pull step
        try:
            return load_flow_from_entrypoint(self.entrypoint)
        finally:
            os.chdir(cwd)


def load_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    return [
        DeploymentSpec(
            name=d["name"],
            entrypoint=d["entrypoint"],
            parameters=d.get("parameters") or {},
            schedules=d.get("schedules") or [],
            description=d.get("description"),
            tags=d.get("tags") or [],
            concurrency_limit=d.get("concurrency_limit"),
            triggers=d.get("triggers") or [],
        )
        for d in data["deployments"]
    ]


def _schedules(spec: DeploymentSpec, activate: bool) -> list:
    from prefect.schedules import Cron

    return [
        Cron(s["cron"], timezone=s.get("timezone", "UTC"), active=bool(s.get("active")) or activate)
        for s in spec.schedules
        if "cron" in s
    ]


def _served_triggers(spec: DeploymentSpec, name: str) -> list:
    """prefect.yaml's triggers for the served deployment ``name``: an upstream *deployment* is
    matched by its served name too (``dedup/serve`` follows ``fineweb/serve``)."""
    from prefect.events import DeploymentEventTrigger

    out = []
    for t in spec.triggers:
        t = {k: v for k, v in t.items() if k != "type"}
        related = t.get("match_related") or []
        related = related if isinstance(related, list) else [related]
        t["match_related"] = [
            {**r, "prefect.resource.name": name}
            if r.get("prefect.resource.role") == "deployment"
            else r
            for r in related
        ]
        out.append(DeploymentEventTrigger(**t))
    return out


def runner_deployments(
    specs: list[DeploymentSpec] | None = None,
    activate_schedules: bool = False,
    only: list[str] | None = None,
    name: str = SERVE_NAME,
) -> list:
    """``RunnerDeployment``s for ``serve``, all named ``name``; ``only`` filters by flow name or
    'flow/deployment' (either the served or the prefect.yaml deployment name)."""
    out = []
    for spec in specs if specs is not None else load_specs():
        flow = spec.load_flow()
        if only and not (
            {flow.name, f"{flow.name}/{spec.name}", f"{flow.name}/{name}"} & set(only)
        ):
            continue
        out.append(
            flow.to_deployment(
                name=name,
                parameters=spec.parameters,
                schedules=_schedules(spec, activate_schedules),
                description=spec.description,
                tags=spec.tags,
                concurrency_limit=spec.concurrency_limit,
                triggers=_served_triggers(spec, name),
            )
        )
    return out


def serve_flows(
    activate_schedules: bool = False, limit: int | None = None, only: list[str] | None = None
) -> None:
    """Serve every deployment of prefect.yaml from this process until interrupted.

    ``limit`` bounds concurrent flow runs in this process. Runs execute with the repository root
    as working directory, as with a worker and the pull step.
    """
    from prefect import serve

    os.chdir(REPO_ROOT)
    serve(*runner_deployments(activate_schedules=activate_schedules, only=only), limit=limit)
