"""Green Button (NAESB REQ.21 ESPI): the streaming feed writer (`espi_feed`), the store's rows in
the order it needs (`stored_rows`), and the subset schema the tests validate it against.
docs/green-button.md describes the feed, the Connect My Data paths and Download My Data."""

from gateway.greenbutton.source import stored_rows
from gateway.greenbutton.writer import CONTENT_TYPE, FeedLinks, RowOrderError, UsageRow, espi_feed

__all__ = ["CONTENT_TYPE", "FeedLinks", "RowOrderError", "UsageRow", "espi_feed", "stored_rows"]
