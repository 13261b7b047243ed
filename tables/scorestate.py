"""The score state's table: :class:`TableScoreStore` writes a :class:`~pipelines.scorebook.ScoreBook`'s
changed rows to a changelog-backed Faust table through the commit-time outbox, and merges the
rows recovered from it after every assignment."""

from __future__ import annotations

from pipelines.scorebook import ScoreBook
from tables.outbox import Outbox, changelog_sender

__all__ = ["TableScoreStore"]


class TableScoreStore(Outbox):
    """One row per (model, partition), JSON; taken at the same instant as the mailboxes, so a label
    redelivered after a crash is counted in both or in neither."""

    def __init__(self, book: ScoreBook, table, send=None) -> None:
        super().__init__(send or changelog_sender(table))
        self.book = book
        self.table = table

    def restore(self, holds=lambda partition: True) -> list[str]:
        """Take the rows the table recovered from its changelog for partitions this worker did not
        hold before (Faust calls this when a recovery completed, before any event of the new
        assignment; rows it held stay as they are: the changelog has nothing newer). Their keys."""
        fresh = [(k, v) for k, v in list(self.table.data.items())
                 if k not in self.book.rows and holds(int(k.rsplit("@", 1)[1]))]  # not a standby copy
        self.book.restore(fresh)
        return [k for k, _ in fresh]

    def changes(self) -> list:
        return [(key, value, partition) for key, partition, value in self.book.dump_dirty()]
