"""Group the failures of pytest logs (run with -rfE) by error message: one line per distinct
message with its count and up to three test ids, so a long failing run fits in a screen; then the
command that reruns only the files that failed (ci/gpu's stages named after its logs).

    python ci/digest.py pytest_cuda.log pytest_rest.log"""
import re
import sys
from collections import defaultdict

STAGE_OF_LOG = {"pytest_cuda.log": "cuda_tests", "pytest_rest.log": "other_tests"}
MAX_RERUN_CHARS = 1500      # the device tool takes a command of 2,000 characters at most


def main(paths):
    groups = defaultdict(list)
    totals = []
    stages, files = [], []
    for path in paths:
        try:
            text = open(path, encoding="utf-8", errors="replace").read()
        except OSError as e:
            print(f"{path}: unreadable ({e})")
            continue
        for line in text.splitlines():
            m = re.match(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", line)
            if m:
                msg = re.sub(r"0x[0-9a-f]+", "0x…", (m.group(3) or "(no message)").strip())[:160]
                groups[msg].append(m.group(2))
                stage = STAGE_OF_LOG.get(path.rsplit("/", 1)[-1])
                if stage and stage not in stages:
                    stages.append(stage)
                f = m.group(2).split("::", 1)[0]
                if f not in files:
                    files.append(f)
        last = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|errors?|skipped|deselected)|no tests ran", ln)]
        totals.append(f"{path.rsplit('/', 1)[-1]}: {last[-1].strip('= ') if last else 'no summary (timed out?)'}")
    for t in totals:
        print(t)
    if not groups:
        print("no failures")
        return
    print(f"{sum(map(len, groups.values()))} failures in {len(groups)} groups:")
    for msg, tests in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:40]:
        print(f"  {len(tests):4d} x {msg}")
        for t in tests[:3]:
            print(f"         {t}")
    if stages:
        rerun = f"bash ci/gpu {' '.join(stages)} -- {' '.join(files)}"
        print(f"rerun: {rerun}" if len(rerun) <= MAX_RERUN_CHARS
              else f"rerun: failures in {len(files)} files, too many to name: bash ci/gpu {' '.join(stages)}")


if __name__ == "__main__":
    main(sys.argv[1:])
