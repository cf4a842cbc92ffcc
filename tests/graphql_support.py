"""Ask Dagster's own GraphQL API what the UI shows, in process, against a real instance.

The webserver serves the UI from the same GraphQL schema (`dagster_graphql`) and loads code
locations out of process, from a gRPC code server. `graphql_workspace` does the same: it
writes a workspace file that loads a Python file (a code location the test wrote, building
its own `Definitions`), starts the code server and yields the workspace. Each query gets a
fresh request context, as each HTTP request to the webserver does, so nothing the previous
query loaded (stale statuses, partition statuses) is reused after the instance changed.

Only public entry points are used (`dagster_graphql.test.utils`): tests must not import
Dagster's private modules (tests/test_architecture.py).

Field names below were checked against the dagster-graphql 1.13 schema
(`dagster_graphql/schema/asset_checks.py`, `asset_graph.py`, `roots/query.py`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_graphql.test.utils import define_out_of_process_workspace, execute_dagster_graphql

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCATION_NAME = "gauntlet"

#: The five per-partition statuses of a partitioned check (`AssetCheckDefaultPartitionStatuses`);
#: a partition in none of them is shown as "Missing" (the UI computes that as the complement).
CHECK_STATUS_FIELDS = (
    "succeededPartitions",
    "failedPartitions",
    "inProgressPartitions",
    "skippedPartitions",
    "executionFailedPartitions",
)

CHECK_PARTITION_STATUSES_QUERY = """
query CheckPartitionStatuses($assetKeys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $assetKeys) {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          partitionStatuses {
            __typename
            ... on AssetCheckDefaultPartitionStatuses {
              succeededPartitions
              failedPartitions
              inProgressPartitions
              skippedPartitions
              executionFailedPartitions
            }
          }
        }
      }
      ... on AssetCheckNeedsMigrationError { message }
      ... on AssetCheckNeedsUserCodeUpgrade { message }
      ... on AssetCheckNeedsAgentUpgradeError { message }
    }
  }
}
"""

CHECK_EXECUTIONS_QUERY = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!, $partition: String, $limit: Int!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, partition: $partition, limit: $limit) {
    id
    runId
    status
    partition
    evaluation {
      success
      partition
      targetMaterialization { storageId runId timestamp }
    }
  }
}
"""

STALE_STATUS_QUERY = """
query StaleStatus($assetKeys: [AssetKeyInput!], $partitions: [String!]) {
  assetNodes(assetKeys: $assetKeys) {
    assetKey { path }
    staleStatusByPartition(partitions: $partitions)
    staleCausesByPartition(partitions: $partitions) {
      key { path }
      partitionKey
      category
      reason
      dependency { path }
      dependencyPartitionKey
    }
  }
}
"""

RUN_TAGS_QUERY = """
query RunTags($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status tags { key value } }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""


class GraphQLError(AssertionError):
    """The query itself failed (an error union member or a resolver exception)."""


@dataclass
class UiClient:
    """Runs GraphQL queries against a loaded workspace, one fresh request context each."""

    workspace: Any  # dagster's WorkspaceProcessContext (its module is private)

    @property
    def instance(self) -> dg.DagsterInstance:
        return self.workspace.instance

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of ``query``; raises on any GraphQL error."""
        # Entered as the webserver enters it for each request (it sets up partition loading).
        with self.workspace.create_request_context() as context:
            result = execute_dagster_graphql(context, query, variables)
        if result.errors:
            raise GraphQLError(f"GraphQL errors: {result.errors}")
        return result.data

    # -- checks ---------------------------------------------------------------------------

    def check_partition_statuses(self, asset: str) -> dict[str, dict[str, set[str]]]:
        """Per check of ``asset``: status field -> partition keys, as the UI's counters show."""
        data = self.query(CHECK_PARTITION_STATUSES_QUERY, {"assetKeys": [{"path": [asset]}]})
        (node,) = data["assetNodes"]
        checks = node["assetChecksOrError"]
        if checks["__typename"] != "AssetChecks":
            raise GraphQLError(f"{asset}: {checks['__typename']}: {checks.get('message')}")
        out: dict[str, dict[str, set[str]]] = {}
        for check in checks["checks"]:
            statuses = check["partitionStatuses"]
            if statuses is None:
                out[check["name"]] = {f: set() for f in CHECK_STATUS_FIELDS}
                continue
            if statuses["__typename"] != "AssetCheckDefaultPartitionStatuses":
                raise GraphQLError(f"{asset}.{check['name']}: unexpected {statuses['__typename']}")
            out[check["name"]] = {f: set(statuses[f]) for f in CHECK_STATUS_FIELDS}
        return out

    def check_executions(
        self, asset: str, check: str, *, partition: str | None = None, limit: int = 10
    ) -> list[dict[str, Any]]:
        """Executions of ``check`` (newest first), as the check's history tab lists them."""
        variables = {"assetKey": {"path": [asset]}, "checkName": check, "partition": partition, "limit": limit}
        return self.query(CHECK_EXECUTIONS_QUERY, variables)["assetCheckExecutions"]

    # -- staleness ------------------------------------------------------------------------

    def stale_by_partition(self, asset: str, partitions: Sequence[str]) -> dict[str, tuple[str, list[dict]]]:
        """Partition -> (FRESH / STALE / MISSING, root stale causes), as the asset page shows."""
        if not partitions:
            return {}
        data = self.query(STALE_STATUS_QUERY, {"assetKeys": [{"path": [asset]}], "partitions": list(partitions)})
        (node,) = data["assetNodes"]
        return {
            key: (status, causes)
            for key, status, causes in zip(
                partitions, node["staleStatusByPartition"], node["staleCausesByPartition"], strict=True
            )
        }

    # -- runs -----------------------------------------------------------------------------

    def run_tags(self, run_id: str) -> dict[str, str]:
        """The tags of run ``run_id``, as the run page shows them."""
        run = self.query(RUN_TAGS_QUERY, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise GraphQLError(f"run {run_id}: {run['__typename']}: {run.get('message')}")
        return {t["key"]: t["value"] for t in run["tags"]}


def describe_causes(causes: list[dict]) -> str:
    """Stale causes in one line: ``asset[partition] reason (dependency)``."""
    parts = []
    for c in causes:
        where = "/".join(c["key"]["path"]) + (f"[{c['partitionKey']}]" if c["partitionKey"] else "")
        dep = f" ({'/'.join(c['dependency']['path'])})" if c["dependency"] else ""
        parts.append(f"{where} {c['reason']}{dep}")
    return "; ".join(parts) or "no causes"


def write_code_location(directory: Path, source: str, *, name: str = "ui_code_location.py") -> Path:
    """A Python file defining the code location (``defs``) from ``source``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


@contextmanager
def graphql_workspace(
    instance: dg.DagsterInstance,
    python_file: Path,
    *,
    attribute: str = "defs",
    working_directory: Path = REPO_ROOT,
    location_name: str = LOCATION_NAME,
) -> Iterator[UiClient]:
    """A workspace serving ``python_file``'s ``attribute`` from a code server, over ``instance``.

    ``working_directory`` (the repository root by default) is on the code server's path, so
    the code location may import ``pipeline_assets`` and ``tests``.
    """
    workspace_file = python_file.parent / f"{python_file.stem}_workspace.yaml"
    entry = {
        "python_file": {
            "relative_path": str(python_file),
            "attribute": attribute,
            "location_name": location_name,
            "working_directory": str(working_directory),
        }
    }
    workspace_file.write_text(yaml.safe_dump({"load_from": [entry]}))
    with define_out_of_process_workspace(str(workspace_file), None, instance) as workspace:
        errors = {
            name: entry.load_error
            for name, entry in workspace.get_current_workspace().code_location_entries.items()
            if entry.load_error
        }
        if errors:
            raise GraphQLError(f"code location failed to load: {errors}")
        yield UiClient(workspace)
