"""A first end-to-end check: publish on A, pull on B over signed HTTP, same record."""

from hashfed.protocol.entries import Entry
from tests.helpers import connect, md5, merged_list, pull_from, stage_and_publish


async def test_pull_one_log(make_home, start_node):
    a = make_home("a.example")
    b = make_home("b.example")
    stage_and_publish(a, [Entry.add("md5", md5(1), ["x:1"]), Entry.add("md5", md5(2))])
    service = await start_node(a)
    connect(b, a, url=service.url)
    results = await pull_from(b, service.url)
    assert [(r.log_id, r.status, r.new_size) for r in results] == [("a.example/default", "updated", 1)]
    assert merged_list(b) == merged_list(a)
