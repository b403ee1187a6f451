"""Runs the end-to-end modules in order against the lab that scripts/test made, and prints the
closing line `N passed, M failed`. Usage: run_e2e.py [module ...] (default: all e2e_*.py)."""
import glob
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rplab  # noqa: E402

ORDER = ["e2e_answers", "e2e_oracles", "e2e_operations", "e2e_hardening", "e2e_limits", "e2e_badpackets"]  # bad packets last: they must not break what follows


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    found = [os.path.basename(p)[:-3] for p in sorted(glob.glob(os.path.join(here, "e2e_*.py")))]
    mods = argv or sorted(found, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))
    total = rplab.Checks("e2e")
    for name in mods:
        t0 = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            c = importlib.import_module(name).run()
        except SystemExit as e:
            total.check(name, False, f"exited: {e}")
            continue
        except Exception as e:  # noqa: BLE001
            total.check(name, False, f"crashed: {e!r}")
            continue
        print(f"== {name}: {c.line()} ({time.monotonic() - t0:.1f} s)", flush=True)
        total.passed += c.passed
        total.failed += c.failed
        total.skipped += c.skipped
    if total.passed + total.failed == 0:
        total.check("ran at least one test", False, "no test ran")
    return total


if __name__ == "__main__":
    t = main(sys.argv[1:])
    print(t.line())
    sys.exit(1 if t.failed else 0)
