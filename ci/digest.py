"""Group the failures of pytest logs (run with -rfE) by error message: one line per distinct
message with its count and up to three test ids, so a long failing run fits in a screen.

    python ci/digest.py pytest_cuda.log pytest_rest.log"""
import re
import sys
from collections import defaultdict


def main(paths):
    groups = defaultdict(list)
    totals = []
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
        last = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
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


if __name__ == "__main__":
    main(sys.argv[1:])
