"""Runs statements the way `cqrs query` does when no runtime holds the store: in a `Reader`
this process opens on the store (what `deploy.query.query` does), one process and one reader
for the whole corpus: reads a JSON list of statements on stdin, writes a JSON list of
`{"rows": …}` or `{"error": …}`."""

import json
import sys

from core.errors import CqrsError
from deploy.query import Reader
from deploy.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    reader = Reader(settings.reader_dsn, settings.query_timeout)
    answers = []
    for sql in json.load(sys.stdin):
        try:
            answers.append({"rows": reader.query(sql).to_json()["rows"]})
        except CqrsError as exc:
            answers.append({"error": str(exc)})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
