"""The example's command actor: appends one JSON line per failed deployment to out/deliveries.jsonl.

orgloop gives the event JSON on stdin and the prompt in the file named by ORGLOOP_PROMPT_FILE.
"""
import json
import os
import sys
from pathlib import Path

event = json.load(sys.stdin)
prompt_file = os.environ.get("ORGLOOP_PROMPT_FILE")
prompt = Path(prompt_file).read_text() if prompt_file else None
out = Path("out")
out.mkdir(exist_ok=True)
with open(out / "deliveries.jsonl", "a") as f:
    f.write(json.dumps({"event_id": event["id"], "service": event["payload"].get("service"),
                        "version": event["payload"].get("version"), "prompt": prompt}) + "\n")
