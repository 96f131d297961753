#!/usr/bin/env python3
"""Print a composite action (action.yml) as a workflow, for actionlint.

actionlint lints workflows; of an action's metadata it checks only the basics
(when a workflow uses it), not its steps. As a workflow whose job runs the
action's steps, and whose workflow_call inputs are the action's inputs, the
steps get actionlint's full checks: expressions and contexts, `inputs.*`
names, action inputs, and shellcheck on every `run:` script.

Usage: action-as-workflow.py action.yml [docs.md] > workflow.yml (exit 1 with
the reasons when the file is not a composite action actionlint can check, or
when the input table of docs.md's "## The action" section, rows
"| `name` |", does not list exactly the action's inputs).
"""
import re
import sys

import yaml


def main(path, docs=None):
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
    if docs:
        with open(docs) as f:
            text = f.read()
        # The input table is the first table of the "## The action" section.
        section = text.split("\n## The action", 1)[-1].split("\n## ", 1)[0]
        rows = set(re.findall(r"^\| `([a-z][a-z0-9-]*)` \|", section, re.M))
        for name in sorted(set(inputs) - rows):
            errors.append(f"{docs}: the input table lacks '{name}' (an input of {path})")
        for name in sorted(rows - set(inputs)):
            errors.append(f"{docs}: the input table lists '{name}', which {path} does not have")
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
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: action-as-workflow.py action.yml [docs.md]")
    main(*sys.argv[1:])
