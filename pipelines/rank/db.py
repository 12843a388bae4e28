"""Rankings in a real database through SQLAlchemy: a SQLite file by default, any SQLAlchemy URL
(e.g. ``postgresql+psycopg://...``) for a team of annotators.

Every accepted ranking is committed in its own transaction before the server answers, so stopping
the server loses nothing. A ranking is a list of groups, best first; responses in one group are
tied (people rank strictly; the verifier puts all correct responses in one group). Bad input
raises ``RankError`` subclasses, each mapped to an HTTP status by the server, and changes nothing:
an unknown sample set (404), a ranking that is not exactly the set's responses (400), a second
ranking of the same set by the same annotator (409).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

metadata = MetaData()

sample_sets = Table(
    "sample_sets",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),  # presentation order
    Column("id", String(64), unique=True, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("answer", Text),
    Column("responses", Text, nullable=False),  # JSON [{id, text}, ...]
    Column("source", Text),
)
rankings = Table(
    "rankings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("set_id", String(64), nullable=False),
    Column("annotator", String(128), nullable=False),
    Column("ranking", Text, nullable=False),  # JSON [[response ids], ...], best group first
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("set_id", "annotator", name="one_ranking_per_annotator"),
)
skips = Table(
    "skips",
    metadata,
    Column("set_id", String(64), primary_key=True),
    Column("annotator", String(128), primary_key=True),
)


class RankError(ValueError):
    status = 400


class UnknownSample(RankError):
    status = 404


class IncompleteRanking(RankError):
    status = 400


class AlreadyRanked(RankError):
    status = 409


def default_url(samples_dir: str | Path) -> str:
    """The SQLite file next to the samples: ``SAMPLES/rankings.sqlite``."""
    return f"sqlite:///{(Path(samples_dir) / 'rankings.sqlite').resolve()}"


def _annotator(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 128:
        raise RankError("annotator: give a name of 1 to 128 characters")
    return name


class RankStore:
    """Sample sets, rankings and skips in one database."""

    def __init__(self, url: str):
        self.url = url
        kw = {"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, **kw)
        metadata.create_all(self.engine)

    # -- sample sets -------------------------------------------------------------------------
    def load_samples(self, rows: list[dict]) -> int:
        """Add sample sets not yet stored; returns how many were new. A stored set whose
        content differs from the new one is an error (its rankings would point at other texts)."""
        new = 0
        with self.engine.begin() as conn:
            have = {
                r.id: r
                for r in conn.execute(
                    select(sample_sets.c.id, sample_sets.c.prompt, sample_sets.c.responses)
                )
            }
            for row in rows:
                responses = json.dumps(
                    [{"id": r["id"], "text": r["text"]} for r in row["responses"]],
                    ensure_ascii=False,
                )
                old = have.get(row["id"])
                if old is not None:
                    if old.prompt != row["prompt"] or old.responses != responses:
                        raise RankError(
                            f"sample set {row['id']} is already stored with different content"
                        )
                    continue
                if len({r["id"] for r in row["responses"]}) != len(row["responses"]):
                    raise RankError(f"sample set {row['id']}: duplicate response ids")
                conn.execute(
                    insert(sample_sets).values(
                        id=row["id"],
                        prompt=row["prompt"],
                        answer=row.get("answer"),
                        responses=responses,
                        source=row.get("source"),
                    )
                )
                new += 1
        return new

    def get_set(self, set_id: str) -> dict:
        with self.engine.connect() as conn:
            r = conn.execute(select(sample_sets).where(sample_sets.c.id == set_id)).first()
        if r is None:
            raise UnknownSample(f"unknown sample set {set_id!r}")
        return {
            "id": r.id,
            "prompt": r.prompt,
            "answer": r.answer,
            "responses": json.loads(r.responses),
            "source": r.source,
        }

    def sets(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(sample_sets).order_by(sample_sets.c.position)).all()
        return [
            {
                "id": r.id,
                "prompt": r.prompt,
                "answer": r.answer,
                "responses": json.loads(r.responses),
                "source": r.source,
            }
            for r in rows
        ]

    # -- rankings ----------------------------------------------------------------------------
    def submit(self, set_id: str, annotator: str, ranking: list) -> int:
        """Store one annotator's ranking of one set; ``ranking`` is a flat list of response ids
        (best first, strict) or a list of groups (ties). Returns the ranking's row id."""
        annotator = _annotator(annotator)
        s = self.get_set(set_id)
        groups = [[g] if isinstance(g, str) else list(g) for g in ranking or []]
        ids = [r for g in groups for r in g]
        want = [r["id"] for r in s["responses"]]
        if any(not isinstance(r, str) for r in ids) or any(not g for g in groups):
            raise IncompleteRanking(
                "a ranking is a list of response ids (or of non-empty groups of ids)"
            )
        unknown = sorted(set(ids) - set(want))
        if unknown:
            raise IncompleteRanking(f"response ids not in set {set_id}: {unknown}")
        if len(ids) != len(set(ids)):
            raise IncompleteRanking("a response appears twice in the ranking")
        missing = [r for r in want if r not in ids]
        if missing:
            raise IncompleteRanking(
                f"the ranking must order all {len(want)} responses; missing {missing}"
            )
        try:
            with self.engine.begin() as conn:
                exists = conn.execute(
                    select(rankings.c.id).where(
                        rankings.c.set_id == set_id, rankings.c.annotator == annotator
                    )
                ).first()
                if exists:
                    raise AlreadyRanked(
                        f"{annotator!r} already ranked set {set_id} (ranking #{exists.id})"
                    )
                res = conn.execute(
                    insert(rankings).values(
                        set_id=set_id,
                        annotator=annotator,
                        ranking=json.dumps(groups),
                        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    )
                )
                conn.execute(
                    skips.delete().where(skips.c.set_id == set_id, skips.c.annotator == annotator)
                )
                return int(res.inserted_primary_key[0])
        except IntegrityError:  # a concurrent double submit lost the race
            raise AlreadyRanked(f"{annotator!r} already ranked set {set_id}") from None

    def skip(self, set_id: str, annotator: str) -> None:
        annotator = _annotator(annotator)
        self.get_set(set_id)
        with self.engine.begin() as conn:
            if not conn.execute(
                select(skips).where(skips.c.set_id == set_id, skips.c.annotator == annotator)
            ).first():
                conn.execute(insert(skips).values(set_id=set_id, annotator=annotator))

    def rankings(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(rankings).order_by(rankings.c.id)).all()
        return [
            {
                "id": r.id,
                "set_id": r.set_id,
                "annotator": r.annotator,
                "ranking": json.loads(r.ranking),
                "created_at": r.created_at,
            }
            for r in rows
        ]

    def next_for(self, annotator: str) -> dict | None:
        """The first set (in sample order) this annotator has neither ranked nor skipped."""
        annotator = _annotator(annotator)
        done = select(rankings.c.set_id).where(rankings.c.annotator == annotator)
        skipped = select(skips.c.set_id).where(skips.c.annotator == annotator)
        with self.engine.connect() as conn:
            r = conn.execute(
                select(sample_sets.c.id)
                .where(sample_sets.c.id.not_in(done), sample_sets.c.id.not_in(skipped))
                .order_by(sample_sets.c.position)
                .limit(1)
            ).first()
        return self.get_set(r.id) if r else None

    def progress(self, annotator: str | None = None) -> dict:
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(sample_sets)).scalar_one()
            n_rank = conn.execute(select(func.count()).select_from(rankings)).scalar_one()
            annotators = [
                r[0]
                for r in conn.execute(
                    select(rankings.c.annotator).distinct().order_by(rankings.c.annotator)
                )
            ]
            out = {"sets": total, "rankings": n_rank, "annotators": annotators}
            if annotator:
                a = _annotator(annotator)
                mine = conn.execute(
                    select(func.count()).select_from(rankings).where(rankings.c.annotator == a)
                ).scalar_one()
                skipped = conn.execute(
                    select(func.count()).select_from(skips).where(skips.c.annotator == a)
                ).scalar_one()
                out.update(
                    annotator=a, ranked=mine, skipped=skipped, remaining=total - mine - skipped
                )
        return out

    def close(self) -> None:
        self.engine.dispose()
