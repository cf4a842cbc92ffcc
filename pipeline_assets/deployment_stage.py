"""The last row of the stage table: a deployment decision for every trial that passed every gate."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import dagster as dg

from pipeline_assets.metadata import records_table
from pipeline_assets.paper_stage import PAPER
from pipeline_assets.stages import StageRecord, StageRun, TrialStage, stage_artifact
from resources.deployment_policy import DeploymentPolicyResource
from resources.registry import DeploymentRegistryResource
from resources.registry_store import DecisionRecord
from simulations.deployment import Candidate
from simulations.errors import PipelineError
from simulations.gates import GateVerdict
from simulations.gauntlet import STAGES
from simulations.stage_names import DEPLOYMENT_NAMES

DEPLOYMENT_RECORD = dg.AssetKey(DEPLOYMENT_NAMES.asset)


def candidate_for(run: StageRun, key: str, *, code_version: str) -> Candidate:
    """The trial as the registry sees it, from the stored results of every gate."""
    snapshot = run.snapshots[key]
    verdicts: dict[str, GateVerdict] = {}
    data_hashes: dict[str, str] = {}
    # A paper grade recorded before sessions had modes came from a replay of the held-out window.
    paper_mode = "holdout"
    for stage in STAGES:
        payload = json.loads(run.artifacts.read_bytes(stage_artifact(key, dg.AssetKey(stage.asset))))
        verdicts[stage.gate] = GateVerdict.model_validate(payload["verdict"])
        data_hashes.update(payload.get("data_hashes", {}))
        if "sam_sha256" in payload:
            data_hashes["cge_sam"] = payload["sam_sha256"]
        if "forward_sha256" in payload:
            data_hashes["paper_forward"] = payload["forward_sha256"]
            paper_mode = payload.get("mode", paper_mode)
    params = json.dumps(snapshot.params, sort_keys=True, separators=(",", ":"))
    return Candidate(
        study=snapshot.study_name,
        number=snapshot.number,
        partition_key=key,
        params_hash=hashlib.sha256(params.encode()).hexdigest(),
        code_version=code_version,
        data_hashes=data_hashes,
        verdicts=verdicts,
        paper_mode=paper_mode,
    )


def decide_batch(
    run: StageRun, keys: Sequence[str], *, registry: DeploymentRegistryResource, policy: DeploymentPolicyResource,
    code_version: str,
) -> dict[str, DecisionRecord]:
    """Decide and record every trial in ``keys`` (one registry transaction each)."""
    settings = policy.settings(policy=run.policy, live_capacity=registry.live_capacity)
    records: dict[str, DecisionRecord] = {}
    for key in keys:
        try:
            records[key] = registry.decide_and_record(
                candidate=candidate_for(run, key, code_version=code_version), settings=settings, decided_by="pipeline"
            )
        except PipelineError as exc:
            run.fail(key, DEPLOYMENT_RECORD.to_user_string(), exc)
    return records


def record(run: StageRun, key: str, decision: tuple[DecisionRecord, list[str]]) -> StageRecord:
    """Show one decision and the live set it left."""
    decided, live = decision
    snapshot = run.snapshots[key]
    verdict_rows = [
        {"gate": gate, "verdict": "pass" if v.passed else "FAIL", "reason": v.reason}
        for gate, v in (decided.verdicts or {}).items()
    ]
    return StageRecord(
        description=f"{snapshot.label}: {decided.decision} — {decided.reason}",
        data_version=decided.idempotency_key or str(decided.id),
        metadata={
            "trial": snapshot.label,
            "decision": decided.decision,
            "reason": decided.reason,
            "decision_id": decided.id,
            "decided_by": decided.decided_by,
            "decided_at": decided.decided_at.isoformat(),
            "grade": decided.grade or "—",
            "paper_mode": decided.paper_mode or "—",
            "replaced": decided.replaced or "—",
            "would_have": decided.would_have or "—",
            "params_hash": decided.params_hash,
            "gates": records_table(verdict_rows, [("gate", "name"), ("verdict", "pass / FAIL"), ("reason", "why")]),
            "live_now": dg.MetadataValue.json(live),
        },
    )


def decisions(
    records: Mapping[str, DecisionRecord], registry: DeploymentRegistryResource
) -> dict[str, tuple[DecisionRecord, list[str]]]:
    """Each decision with the live set after the batch (read once)."""
    live = [entry.partition_key for entry in registry.live()] if records else []
    return {key: (record, live) for key, record in records.items()}


DEPLOYMENT = TrialStage(
    names=DEPLOYMENT_NAMES,
    description="The deployment decision for a trial that passed every gate, as written to the registry.",
    deps=(PAPER.key,),
    kinds=frozenset({"sqlalchemy"}),
    code_version="3",
    record=record,
)
