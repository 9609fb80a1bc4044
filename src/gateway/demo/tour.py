"""The guided tour ``matgate demo`` prints: numbered steps of copy-paste commands.

Each step shows one governance case of the demo federation. Steps that go through a user's home
node to another institution's dataset use the federation routes; the agreement and the train-only
explanation are asked of the owning node directly, with a guest token its operator issued.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["guide"]


def _persona(demo: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in demo["personas"] if p["name"] == name)


def _fingerprint(demo: dict[str, Any], node: dict[str, Any]) -> str:
    """The log key fingerprint an auditor pins (from demo.json)."""
    return str(node.get("fingerprint", "FINGERPRINT"))


def _witnesses(demo: dict[str, Any], node: dict[str, Any]) -> str:
    """The other nodes' witness keys as verify options."""
    others = [n["witness"] for n in demo["nodes"] if n is not node and n.get("witness")]
    if not others:
        return ""
    keys = "".join(f" \\\n      --witness '{w}'" for w in others)
    return f"{keys} --witnesses {len(others)}"


def guide(demo: dict[str, Any], path: Path) -> str:
    """What to type next: the nodes, the personas' tokens and the numbered tour."""
    urls = {n["institution"]: n["url"] for n in demo["nodes"]}
    first = demo["nodes"][0]
    mia, pablo = _persona(demo, "ml-user"), _persona(demo, "partner")
    sana, ari = _persona(demo, "steward"), _persona(demo, "auditor")
    nodes = "\n".join(f"  {name:<9} {url}   (API docs: {url}/docs)" for name, url in urls.items())
    exports = " ".join(f"{name.upper()}={url}" for name, url in urls.items())
    guests = ""
    if "borealis" in urls:
        guests = (
            f"  export MIA_AT_BOREALIS={mia['guest_tokens'].get('borealis', '')}\n"
            f"  export PABLO_AT_AURORA={pablo['guest_tokens'].get('aurora', '')}\n"
        )
    bearer = 'curl -sH "Authorization: Bearer'
    json_type = '-H "Content-Type: application/json"'
    embargo = demo.get("embargo_until", "its embargo date")
    pin = _fingerprint(demo, first)
    return f"""
matgate demo is running: {len(urls)} institution(s) of a federation, on loopback.
{nodes}
  demo.json {path}   (nodes and personas; tokens valid for two days)

Who is who (each token is minted by the person's home node):
  export {exports}
  export MIA={mia["token"]}     # ML user at Aurora
  export PABLO={pablo["token"]}   # researcher at Borealis, Aurora's partner
  export SANA={sana["token"]}    # Aurora's data steward
  export ARI={ari["token"]}     # Aurora's auditor
{guests}  export MATGATE_URL={first["url"]}
  export MATGATE_TOKEN=$MIA

1. Search the catalog, at home and across the federation (what Mia may discover):
  matgate catalog "band gap"
  {bearer} $MIA" "$AURORA/catalog?federated=true&q=band%20gap"

2. A permitted pull into pandas; the manifest travels in df.attrs:
  python - <<'PY'
import os
from gateway.client import Client
c = Client(os.environ["AURORA"], token=os.environ["MIA"])
df = c.dataset("aurora/ni-superalloys").pull(
    columns=["alloy", "test_temperature_c", "yield_strength_mpa"],
    filter="test_temperature_c > 600", purpose="research")
print(df.head(), df.attrs["matgate"]["licence"])
PY
  matgate pull aurora/ni-superalloys --purpose research \\
    --filter "test_temperature_c > 600" -o slice.parquet

3. Pablo pulls Aurora's superalloys through Borealis, for research: the operator column comes
   hashed, the confidential sponsor is withheld, embargoed rows stay hidden:
  {bearer} $PABLO" \\
    "$BOREALIS/datasets/aurora/ni-superalloys/slice?purpose=research&columns=alloy,operator&limit=5"

4. The same for commercial use is refused, and says why:
  {bearer} $PABLO" \\
    "$BOREALIS/datasets/aurora/ni-superalloys/slice?purpose=commercial&limit=5"

5. A confidential column masked: Mia reads Cygnus's cobalt steels, the supplier redacted:
  {bearer} $MIA" "$AURORA/datasets/cygnus/cobalt-steels/slice?purpose=research&limit=5"

6. An embargoed dataset: Cygnus's halides are listed but not readable before {embargo};
   a federated query over both band-gap cuts returns Borealis's rows and flags Cygnus:
  {bearer} $MIA" "$AURORA/datasets/cygnus/halide-gaps/slice?purpose=research"
  {bearer} $MIA" {json_type} "$AURORA/federation/query" -d '{{
    "datasets": ["borealis/oxide-gaps", "cygnus/halide-gaps"], "columns": ["formula", "target"],
    "filter": "target > 4", "purpose": "research", "format": "json"}}'

7. Train, do not read: Borealis lets Aurora's models learn from its creep tests; the rows and
   the model stay there. Reading is refused; a training job runs at Borealis, asked for and
   followed through Aurora, which relays the card and the predictions (the model file would
   need Borealis to grant export-model; probes of training rows are refused):
  {bearer} $MIA" "$AURORA/datasets/borealis/superalloy-creep/slice?purpose=ml-training"
  {bearer} $MIA_AT_BOREALIS" {json_type} "$BOREALIS/explain" -d '{{
    "dataset": "borealis/superalloy-creep", "action": "train", "purpose": "ml-training"}}'
  python - <<'PY'
import os
from gateway.client import Client
c = Client(os.environ["AURORA"], token=os.environ["MIA"])
model, job = c.train_remote("borealis/superalloy-creep", "stress_rupture_time_h", estimator="ridge")
print(job["run"]["model_name"], model.metrics)
print(model.screen(grid={{"test_temperature_c": [700, 800, 900]}}, top=3))
PY

8. Accept an agreement: Aurora's steel data needs its terms accepted first (the 403 says where);
   Pablo lists and accepts them through his home node, Borealis, which forwards to Aurora:
  {bearer} $PABLO" "$BOREALIS/datasets/aurora/steels-yield/slice?purpose=research&limit=5"
  {bearer} $PABLO" "$BOREALIS/datasets/aurora/steels-yield/agreements"
  {bearer} $PABLO" -X POST \\
    "$BOREALIS/datasets/aurora/steels-yield/agreements/aurora-steels-terms/accept"
  {bearer} $PABLO" "$BOREALIS/datasets/aurora/steels-yield/slice?purpose=research&limit=5"

9. The audit log: Ari reads who got what, and verifies the log trusting only the key she
   pinned and the two other nodes, which witness Aurora's log (they cosign every 10 s):
  MATGATE_TOKEN=$ARI matgate audit events --dataset aurora/ni-superalloys --limit 5
  MATGATE_TOKEN=$ARI matgate audit verify --trust-key={pin}{_witnesses(demo, first)}
  MATGATE_TOKEN=$ARI matgate audit report --dataset aurora/ni-superalloys -o ni-report.json
  matgate audit verify-report ni-report.json --trust-key={pin}

Ctrl-C stops every server.
"""
