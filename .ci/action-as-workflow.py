#!/usr/bin/env python3
"""Print a composite action (action.yml) as a workflow, for actionlint.

actionlint lints workflows; of an action's metadata it checks only the basics
(when a workflow uses it), not its steps. As a workflow whose job runs the
action's steps, and whose workflow_call inputs are the action's inputs, the
steps get actionlint's full checks: expressions and contexts, `inputs.*`
names, action inputs, and shellcheck on every `run:` script.

Usage: action-as-workflow.py action.yml > workflow.yml (exit 1 with the
reasons when the file is not a composite action actionlint can check).
"""
import sys

import yaml


def main(path):
    with open(path) as f:
        action = yaml.safe_load(f)
    errors = []
    if not isinstance(action, dict):
        sys.exit(f"{path}: not a YAML mapping")
    for key in ("name", "description", "runs"):
        if key not in action:
            errors.append(f"{path}: no '{key}' (required in action metadata)")
    runs = action.get("runs") or {}
    if runs.get("using") != "composite":
        errors.append(f"{path}: runs.using is {runs.get('using')!r}, not 'composite'")
    steps = runs.get("steps") or []
    if not steps:
        errors.append(f"{path}: runs.steps is empty")
    for i, step in enumerate(steps):
        if "run" in step and "shell" not in step:
            errors.append(f"{path}: step {i + 1} ({step.get('name', 'unnamed')}): a composite action's run step needs 'shell'")
    inputs = action.get("inputs") or {}
    for name, spec in inputs.items():
        if not (spec or {}).get("description"):
            errors.append(f"{path}: input '{name}' has no description")
    for name, spec in (action.get("outputs") or {}).items():
        if "value" not in (spec or {}):
            errors.append(f"{path}: output '{name}' has no value (a composite action's outputs need one)")
    if errors:
        sys.exit("\n".join(errors))

    call_inputs = {}
    for name, spec in inputs.items():
        spec = spec or {}
        call_inputs[name] = {
            "description": spec["description"],
            "type": "string",
            "required": bool(spec.get("required", False)),
            "default": str(spec.get("default", "")),
        }
    workflow = {
        "name": f"{action['name']} (steps of {path}, checked as a workflow)",
        "on": {"workflow_call": {"inputs": call_inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": steps}},
    }
    yaml.safe_dump(workflow, sys.stdout, sort_keys=False, width=200)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: action-as-workflow.py action.yml")
    main(sys.argv[1])
