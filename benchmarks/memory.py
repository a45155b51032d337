"""Where the peak memory of a default `python train.py` goes: the process's peak resident
memory (VmHWM) once its imports are done and at the end of each phase, and, after the
imports, the resident memory by what it maps (TensorFlow's libraries, the heap, the rest).

    python benchmarks/memory.py [train.py flags ...]     # writes under a new temporary folder

Memory does not depend on the machine's load, unlike time: this can run beside other work.
The run is train.py's own `main`, in this process, with each phase's end observed.
"""

import collections
import pathlib
import re
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def status():
    """{VmHWM, VmRSS, RssAnon, RssFile} of this process, MiB."""
    fields = {}
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def by_mapping(top=6):
    """[(MiB resident, what is mapped)] of the largest mappings of this process, summed by
    file ("[anon]" for anonymous memory)."""
    resident, current = collections.Counter(), None
    for line in pathlib.Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            current = pathlib.Path(parts[5]).name if len(parts) > 5 else "[anon]"
        elif parts and parts[0] == "Rss:":
            resident[current] += int(parts[1]) / 1024
    return resident.most_common(top)


def main():
    out = pathlib.Path(tempfile.mkdtemp(prefix="tfnn-memory-"))
    flags = sys.argv[1:] or []
    rows = [("process start", status())]
    start = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from tfnn.cli import train as cli
    from tfnn.recipe import phases, train  # noqa: F401 (train.py's imports: TensorFlow, Keras)

    rows.append(("imports done", status()))
    mappings = by_mapping()
    phase = phases.Stopwatch.phase

    def observed(self, name):
        context = phase(self, name)

        class Observed:
            def __enter__(self):
                return context.__enter__()

            def __exit__(self, *exception):
                result = context.__exit__(*exception)
                rows.append((name, status()))
                return result

        return Observed()

    phases.Stopwatch.phase = observed
    argv = [*flags, "--logdir", str(out / "logs"), "--export_dir", str(out / "exports")]
    cli.main(argv)
    print(f"train.py {' '.join(flags)}: {time.perf_counter() - start:.0f} s")
    print("\n| after | peak RSS (MiB) | RSS | anonymous | file-backed |")
    print("|---|---:|---:|---:|---:|")
    for name, values in rows:
        print(
            f"| {name} | {values['VmHWM']:,.0f} | {values['VmRSS']:,.0f} | "
            f"{values['RssAnon']:,.0f} | {values['RssFile']:,.0f} |"
        )
    print("\nResident after the imports, by mapping:\n\n| MiB | mapping |\n|---:|---|")
    for name, mib in mappings:
        print(f"| {mib:,.0f} | {name} |")


if __name__ == "__main__":
    main()
