"""``course gallery GRADED_DIR --out gallery/``: chosen deliverables of every student of a batch on one page
(``course.gallery``), named only where a roster allows it."""

from __future__ import annotations

from pathlib import Path

from course.gallery import GalleryConfig

DEFAULTS = GalleryConfig(graded=Path("."))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gallery",
        help="gather chosen deliverables (e.g. every student's anagrams and hybrids) of a batch into one page",
        description="GRADED_DIR holds one folder per student (the submission with its writeup_figures/, the "
        "student's write-up site, or a grading folder holding either). Writes OUT/index.html, style.css and "
        "figures/. Students are anonymous ('student 4') unless --roster names them with their consent.",
    )
    parser.add_argument("graded", type=Path, metavar="GRADED_DIR", help="the batch: one folder per student")
    parser.add_argument("--out", type=Path, default=DEFAULTS.out, help="the page's folder (default: %(default)s)")
    parser.add_argument("--deliverables", default=",".join(DEFAULTS.deliverables),
                        help="deliverable ids, comma-separated (default: %(default)s; see fwd_kit.deliverables)")
    parser.add_argument("--roster", type=Path, help="CSV with the columns submission, name, consent: a student's "
                        "name is shown only where consent is yes")
    parser.add_argument("--title", default=DEFAULTS.title, help="the page's title (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from course.gallery import build_gallery

    ids = tuple(i.strip() for i in args.deliverables.split(",") if i.strip())
    try:
        index, shown = build_gallery(GalleryConfig(args.graded, args.out, ids, args.roster, args.title))
    except (ValueError, OSError) as err:
        raise SystemExit(f"course gallery: {err}") from None
    print(f"wrote {index}: {shown} figures")
    return 0
