"""Records what ansible-core 2.18 answers for each case in cases.json (the expected values
of the lookup unit tests in runner/src/lookups/tests.rs).

Usage: python3 ansible_reference.py /path/to/venv/bin/ansible-playbook

Each case is an expression (rendered as `debug: msg="{{ expr }}"`) or a `with_<lookup>`
loop over `terms` (its items are recorded), run with the play variables in vars.json.
The answer is stored in the case as {"ok": value} or {"err": message}.
"""
import json
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    playbook_cmd = sys.argv[1]
    cases = json.load(open(os.path.join(HERE, "cases.json")))
    play_vars = json.load(open(os.path.join(HERE, "vars.json")))
    tasks = []
    for i, case in enumerate(cases):
        task = {"name": "case%d" % i, "ignore_errors": True}
        if "with" in case:
            task["debug"] = {"msg": "{{ item }}"}
            task["with_" + case["with"]] = case["terms"]
        else:
            task["debug"] = {"msg": "{{ " + case["expr"] + " }}"}
        tasks.append(task)
    play = [{"hosts": "localhost", "gather_facts": False, "vars": play_vars, "tasks": tasks}]
    work = tempfile.mkdtemp()
    path = os.path.join(work, "playbook.yml")
    with open(path, "w") as f:
        yaml.safe_dump(play, f, sort_keys=False)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    out = subprocess.run([playbook_cmd, path], capture_output=True, text=True, env=env, cwd=work)
    data = json.loads(out.stdout[out.stdout.index("{"):])
    for case, task in zip(cases, data["plays"][0]["tasks"]):
        r = task["hosts"]["localhost"]
        if "results" in r:
            answer = {"ok": [x.get("item") for x in r["results"]]}
        elif r.get("failed"):
            answer = {"err": r.get("msg")}
        elif r.get("skipped"):
            answer = {"ok": []}
        else:
            answer = {"ok": r.get("msg")}
        case["ansible"] = answer
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]\n")


main()
