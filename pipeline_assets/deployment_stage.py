"""The end of the gauntlet: a deployment decision for every trial that passed every gate."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence

import dagster as dg

from pipeline_assets.metadata import records_table
from pipeline_assets.stages import PIPELINE_CODE_VERSION, TrialBatch, versioned_tags
from resources.deployment_policy import DeploymentPolicyResource
from resources.registry import DecisionRecord, DeploymentRegistryResource
from simulations.deployment import Candidate
from simulations.errors import PipelineError
from simulations.gates import GateVerdict

DEPLOYMENT_RECORD = dg.AssetKey("deployment_record")

#: Gate name -> the stored stage summary holding its verdict.
VERDICT_ARTIFACTS = {
    "backtest_gate": "backtest_results.json",
    "cge_gate": "cge_stress_report.json",
    "paper_trading_gate": "paper_trading_grade.json",
}


def candidate_for(batch: TrialBatch, key: str) -> Candidate:
    """The trial as the registry sees it, from the stored results of its three gates."""
    snapshot = batch.snapshots[key]
    verdicts: dict[str, GateVerdict] = {}
    data_hashes: dict[str, str] = {}
    for gate, name in VERDICT_ARTIFACTS.items():
        payload = json.loads(batch.artifacts.read_bytes(f"trials/{key}/{name}"))
        verdicts[gate] = GateVerdict.model_validate(payload["verdict"])
        data_hashes.update(payload.get("data_hashes", {}))
        if "sam_sha256" in payload:
            data_hashes["cge_sam"] = payload["sam_sha256"]
        if "forward_sha256" in payload:
            data_hashes["paper_forward"] = payload["forward_sha256"]
    params = json.dumps(snapshot.params, sort_keys=True, separators=(",", ":"))
    return Candidate(
        study=snapshot.study_name,
        number=snapshot.number,
        partition_key=key,
        params_hash=hashlib.sha256(params.encode()).hexdigest(),
        code_version=PIPELINE_CODE_VERSION,
        data_hashes=data_hashes,
        verdicts=verdicts,
    )


def decide_batch(
    batch: TrialBatch, keys: Sequence[str], *, registry: DeploymentRegistryResource, policy: DeploymentPolicyResource
) -> dict[str, DecisionRecord]:
    """Decide and record every trial in ``keys`` (one registry transaction each)."""
    settings = policy.settings(policy=batch.policy, live_capacity=registry.live_capacity)
    records: dict[str, DecisionRecord] = {}
    for key in keys:
        try:
            records[key] = registry.decide_and_record(
                candidate=candidate_for(batch, key), settings=settings, decided_by="pipeline"
            )
        except PipelineError as exc:
            batch.fail(key, "deployment_record", exc)
    return records


def events(
    batch: TrialBatch, records: Mapping[str, DecisionRecord], registry: DeploymentRegistryResource
) -> Iterator[dg.AssetMaterialization]:
    """One materialization per decision, showing it and the live set it left."""
    live = [entry.partition_key for entry in registry.live()] if records else []
    for key, record in records.items():
        snapshot = batch.snapshots[key]
        verdict_rows = [
            {"gate": gate, "verdict": "pass" if v.passed else "FAIL", "reason": v.reason}
            for gate, v in (record.verdicts or {}).items()
        ]
        yield dg.AssetMaterialization(
            asset_key=DEPLOYMENT_RECORD,
            partition=key,
            description=f"{snapshot.label}: {record.decision} — {record.reason}",
            metadata={
                "trial": snapshot.label,
                "decision": record.decision,
                "reason": record.reason,
                "decision_id": record.id,
                "decided_by": record.decided_by,
                "decided_at": record.decided_at.isoformat(),
                "grade": record.grade or "—",
                "replaced": record.replaced or "—",
                "would_have": record.would_have or "—",
                "params_hash": record.params_hash,
                "gates": records_table(verdict_rows, [("gate", "name"), ("verdict", "pass / FAIL"), ("reason", "why")]),
                "live_now": dg.MetadataValue.json(live),
            },
            tags=versioned_tags(record.idempotency_key or str(record.id)),
        )
