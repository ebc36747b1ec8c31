"""How well bounce analysis agrees with a labelled corpus, per server family.

Usage: .venv/bin/python scripts/bounce_figures.py [DIR] [--odd | --even] [--misses]

DIR (default tests/data/bounces) holds ``mail/*.eml`` and ``expected.json``, which
maps each file name to its expected recipients in order, each with ``hard``,
``reason``, ``reply`` and ``status``. Expected entries are matched to the
analysed recipients by position. The figures, over expected entries:

- hard/soft: the analysed recipient exists and agrees on ``hard``;
- status: it exists and has exactly the expected status; "status*" counts only the
  entries whose expected status is a real RFC 3463 code, leaving out the
  labeller's own x.y.9zz codes, which no report contains;
- reason, reply: exact agreement;
- found: it exists and its address was found (not '').

The family of ``lhost-exim-07.eml`` is ``lhost-exim``; ``--odd`` and ``--even``
keep only the files whose number is odd or even.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mailsim_runtime.bounce import BouncedRecipient, analyze

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"
_NUMBERED = re.compile(r"^(?P<family>.+)-(?P<number>\d+)\.eml$")
_PSEUDO_STATUS = re.compile(r"^\d\.\d\.9\d\d$")
COLUMNS = ("hard/soft", "status", "status*", "reason", "reply", "found")


@dataclass
class Tally:
    """Counts of agreeing entries for one group of files."""

    entries: int = 0
    real_status: int = 0
    agree: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))

    def add(self, expected: dict[str, object], got: BouncedRecipient | None) -> None:
        self.entries += 1
        real = not _PSEUDO_STATUS.match(str(expected["status"]))
        self.real_status += real
        if got is None:
            return
        self.agree["hard/soft"] += got.hard == expected["hard"]
        self.agree["status"] += got.status == expected["status"]
        self.agree["status*"] += real and got.status == expected["status"]
        self.agree["reason"] += got.reason == expected["reason"]
        self.agree["reply"] += got.reply == expected["reply"]
        self.agree["found"] += bool(got.recipient)

    def ratio(self, column: str) -> float:
        total = self.real_status if column == "status*" else self.entries
        return self.agree[column] / total if total else 1.0


@dataclass
class Figures:
    """The tallies: overall, per family, and the entries that disagree."""

    overall: Tally = field(default_factory=Tally)
    families: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    misses: list[str] = field(default_factory=list)


def family(name: str) -> tuple[str, int]:
    found = _NUMBERED.match(name)
    return (found["family"], int(found["number"])) if found else (name, 0)


def measure(directory: Path = DEFAULT_DIR, parity: int | None = None) -> Figures:
    """Analyse every labelled file in *directory* (only odd or even numbers if
    *parity* is 1 or 0) and tally the agreement."""
    expected: dict[str, list[dict[str, object]]] = json.loads(
        (directory / "expected.json").read_text(encoding="utf-8")
    )
    figures = Figures()
    for name, entries in sorted(expected.items()):
        group, number = family(name)
        if parity is not None and number % 2 != parity:
            continue
        report = analyze((directory / "mail" / name).read_bytes())
        got = list(report.recipients) if report is not None else []
        for index, entry in enumerate(entries):
            mine = got[index] if index < len(got) else None
            figures.overall.add(entry, mine)
            figures.families[group].add(entry, mine)
            if mine is None or mine.hard != entry["hard"] or mine.reason != entry["reason"]:
                figures.misses.append(
                    f"{name}[{index}]: expected {entry['hard']!s:5} {entry['reason']:15} "
                    f"{entry['reply']:3} {entry['status']:8} got "
                    + (
                        "nothing"
                        if mine is None
                        else f"{mine.hard!s:5} {mine.reason:15} {mine.reply:3} {mine.status:8} "
                        f"{mine.recipient} | {mine.diagnostic[:90]}"
                    )
                )
    return figures


def table(figures: Figures) -> str:
    head = f"{'family':22} {'entries':>7} " + " ".join(f"{c:>9}" for c in COLUMNS)
    rows = [head, "-" * len(head)]
    groups = [*sorted(figures.families.items()), ("overall", figures.overall)]
    for name, tally in groups:
        cells = " ".join(f"{tally.ratio(c):9.1%}" for c in COLUMNS)
        rows.append(f"{name:22} {tally.entries:7d} {cells}")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    parity = 1 if "--odd" in argv else 0 if "--even" in argv else None
    directory = Path(args[0]) if args else DEFAULT_DIR
    if not (directory / "expected.json").is_file():
        print(f"{directory}: no expected.json here", file=sys.stderr)
        return 2
    figures = measure(directory, parity)
    print(table(figures))
    if "--misses" in argv:
        print("\n" + "\n".join(figures.misses))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
