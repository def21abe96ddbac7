"""The one interface the entrypoints call: what a user can ask of the deployments of a data
dir. The runtime implements it in its own process (`deploy.runtime.Runtime`), the HTTP client
implements it for every other process (`deploy.client.RuntimeClient`), and the API serves
whichever it is given (`api.app.create_app`), so the CLI calls it the same way either way.
`deploy.bootstrap.service` says which one a command gets.

A spec handed to `replay` or `deploy_init` says where it came from (`Origin`): a spec from the
user's own CLI may import any module, one that came over the API only modules on the runtime's
allow-list. Over HTTP the runtime takes every spec as from the API, whatever the caller says.
"""

from __future__ import annotations

from typing import Protocol

from deploy.model import (
    BlueGreenState,
    Dashboard,
    DeploymentStatus,
    Health,
    History,
    InitRequest,
    MemberReport,
    MemberRun,
    Origin,
    PromoteRequest,
    QueryResult,
    ReplayRequest,
)


class Service(Protocol):
    def health(self) -> Health: ...

    # -- deployments ---------------------------------------------------------------------------
    def list_deployments(self, everything: bool = False) -> list[DeploymentStatus]:
        """Live deployments; with `everything` also the retired and aborted ones."""
        ...

    def get_deployment(self, name: str) -> DeploymentStatus: ...
    def replay(self, request: ReplayRequest, origin: Origin = Origin.LOCAL) -> DeploymentStatus:
        """Register a new deployment of a spec and start it."""
        ...

    def start(self, name: str) -> DeploymentStatus: ...
    def stop(self, name: str) -> DeploymentStatus: ...
    def skip(self, name: str, partition: int, offset: int) -> DeploymentStatus: ...
    def member_run(self, name: str, report: MemberReport) -> MemberRun:
        """For a member of a cluster across hosts: the run of process 0 it joins."""
        ...

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str) -> QueryResult: ...
    def dashboard(self) -> Dashboard: ...

    # -- blue/green ----------------------------------------------------------------------------
    def deploy_state(self, pipeline: str) -> BlueGreenState: ...
    def deploy_history(self, pipeline: str) -> History: ...
    def deploy_init(
        self, request: InitRequest, origin: Origin = Origin.LOCAL
    ) -> BlueGreenState: ...
    def deploy_promote(self, pipeline: str, request: PromoteRequest) -> BlueGreenState: ...
    def deploy_rollback(self, pipeline: str) -> BlueGreenState: ...
    def deploy_abort(self, pipeline: str) -> BlueGreenState: ...
    def deploy_cleanup(self, pipeline: str) -> BlueGreenState: ...
