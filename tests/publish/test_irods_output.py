"""IrodsOutput against the in-process fake server: atomic writes, deletes, exists, ACLs.

No network: the client is a FakeIrodsClient on a FakeIrodsServer.
"""

from __future__ import annotations

from types import SimpleNamespace

import irods.exception as ex
import pytest
from fake_irods import FakeIrodsServer

from stacsync.config.settings import IrodsSettings
from stacsync.core.atomic import TEMP_PREFIX
from stacsync.core.errors import OutputError
from stacsync.keeper.parent_irods import IrodsParentStore
from stacsync.publish.irods import IrodsOutput, ensure_public_read

HOME = "/iplant/home/alice"
OUT = f"{HOME}/catalog"
SOURCE = f"{HOME}/drone"


@pytest.fixture
def server() -> FakeIrodsServer:
    return FakeIrodsServer()


@pytest.fixture
def output(server) -> IrodsOutput:
    out = IrodsOutput(server.client("alice"), OUT)
    out.check_writable()
    return out


def temp_objects(server: FakeIrodsServer) -> list[str]:
    return [p for p in server.objects if p.rsplit("/", 1)[1].startswith(TEMP_PREFIX)]


# -- the collection --------------------------------------------------------------------------


def test_check_writable_creates_the_collection(server):
    IrodsOutput(server.client(), f"{OUT}/deep/er").check_writable()
    assert f"{OUT}/deep/er" in server.collections


def test_check_writable_without_permission_is_a_clear_output_error(server):
    with pytest.raises(OutputError) as raised:
        IrodsOutput(server.client("alice"), "/iplant/home/bob/catalog").check_writable()
    message = str(raised.value)
    assert "/iplant/home/bob/catalog" in message and "permission denied" in message


def test_check_writable_refuses_a_data_object(server):
    server.add_object(OUT, b"not a collection")
    with pytest.raises(OutputError, match="exists and is not a collection"):
        IrodsOutput(server.client(), OUT).check_writable()


def test_paths_outside_the_root_are_refused(output):
    for bad in ("../x.json", "/iplant/home/alice/x.json", "a/../../x.json", "..", ""):
        with pytest.raises(OutputError, match="outside the output collection"):
            output.write(bad, b"{}")
    assert output.path("a/./b.json") == f"{OUT}/a/b.json"


# -- writes ----------------------------------------------------------------------------------


def test_write_is_a_put_to_a_temp_name_then_a_rename(server, output):
    output.write("catalog.json", b'{"v": 1}')
    assert server.data(f"{OUT}/catalog.json") == b'{"v": 1}'
    ((_local, tmp),) = server.calls("put")
    assert tmp.startswith(f"{OUT}/{TEMP_PREFIX}")
    assert server.calls("rename") == [(tmp, f"{OUT}/catalog.json")]
    assert temp_objects(server) == []


def test_a_reader_never_sees_a_partial_file(server, output):
    server.put_chunk = 1000  # uploads are visible half-done under their own name
    old, new = b"a" * 5000, b"b" * 7000
    output.write("collection.json", old)
    output.write("collection.json", new)
    seen = server.visible(f"{OUT}/collection.json")
    assert set(seen) <= {None, old, new}
    assert seen[-1] == new
    second_tmp = server.calls("put")[1][1]
    assert any(v not in (None, new) for v in server.visible(second_tmp))  # partial, elsewhere


def test_overwrite_removes_then_renames_since_irods_cannot_rename_over(server, output):
    output.write("item.json", b"1")
    output.write("item.json", b"2")
    ops = [h[0] for h in server.history if h[0] in ("put", "remove", "rename")]
    assert ops == ["put", "rename", "put", "remove", "rename"]
    assert server.data(f"{OUT}/item.json") == b"2"


def test_file_made_by_someone_else_since_the_listing_is_still_replaced(server, output):
    assert not output.exists("late.json")  # the listing is taken now
    server.add_object(f"{OUT}/late.json", b"theirs")
    output.write("late.json", b"ours")
    assert server.data(f"{OUT}/late.json") == b"ours"
    assert temp_objects(server) == []


def test_open_atomic_writes_into_sub_collections(server, output):
    with output.open_atomic("c1/items/i1.json") as out:
        out.write(b"{")
        out.write(b"}")
    assert server.data(f"{OUT}/c1/items/i1.json") == b"{}"
    assert output.exists("c1/items/i1.json")


def test_failure_inside_open_atomic_leaves_no_trace(server, output):
    output.write("a.json", b"old")
    with pytest.raises(RuntimeError), output.open_atomic("a.json") as out:
        out.write(b"half")
        raise RuntimeError("renderer crashed")
    assert server.data(f"{OUT}/a.json") == b"old"
    assert len(server.calls("put")) == 1


def test_upload_cut_off_is_an_output_error_and_cleans_up(server, output):
    server.put_chunk = 10
    output.write("a.json", b"old")
    server.fail("put", after=20)
    with pytest.raises(OutputError) as raised:
        output.write("a.json", b"x" * 100)
    assert isinstance(raised.value, OSError)
    assert "cannot write a.json" in str(raised.value) and "connection lost" in str(raised.value)
    assert server.data(f"{OUT}/a.json") == b"old"
    assert temp_objects(server) == []


def test_write_without_permission_names_the_file(server):
    server.add_object("/iplant/home/bob/catalog/x.json", b"x", owner="bob")
    server.grant("/iplant/home/bob/catalog", "alice", "read")
    output = IrodsOutput(server.client("alice"), "/iplant/home/bob/catalog")
    output.check_writable()  # it exists: nothing to create
    with pytest.raises(OutputError, match=r"cannot write y\.json: permission denied"):
        output.write("y.json", b"y")


def test_sweep_removes_temp_objects_a_crash_left(server, output):
    output.write("keep.json", b"k")
    server.add_object(f"{OUT}/{TEMP_PREFIX}abc", b"half")
    server.add_object(f"{OUT}/sub/{TEMP_PREFIX}def", b"half")
    output.sweep_temp_files()
    assert temp_objects(server) == []
    assert server.data(f"{OUT}/keep.json") == b"k"


# -- exists and deletes ----------------------------------------------------------------------


def test_exists_lists_once_per_pass_not_once_per_item(server, output):
    for i in range(300):
        server.add_object(f"{OUT}/items/i{i}.json", b"{}")
    output.check_writable()  # a new pass
    before = len(server.history)
    assert all(output.exists(f"items/i{i}.json") for i in range(300))
    assert not output.exists("items/nope.json")
    calls = [h[0] for h in server.history[before:]]
    assert calls.count("list_files") == 1
    assert set(calls) == {"list_files", "page"}
    output.write("items/new.json", b"{}")
    output.delete("items/i0.json")
    assert output.exists("items/new.json") and not output.exists("items/i0.json")
    assert len(server.calls("list_files")) == 1
    output.check_writable()  # the next pass lists again
    assert output.exists("items/new.json")
    assert len(server.calls("list_files")) == 2


def test_exists_ignores_temp_files_and_wildcard_siblings(server):
    root = f"{HOME}/cat_1"
    server.add_object(f"{root}/a.json", b"a")
    server.add_object(f"{HOME}/catX1/b.json", b"b")  # `_` is a LIKE wildcard
    server.add_object(f"{root}/{TEMP_PREFIX}zz", b"t")
    output = IrodsOutput(server.client(), root)
    output.check_writable()
    assert output.exists("a.json")
    assert not output.exists("../catX1/b.json") and not output.exists("b.json")
    assert not output.exists(f"{TEMP_PREFIX}zz")


def test_delete_removes_the_file_and_the_collections_it_empties(server, output):
    output.write("c1/items/i1/i1.json", b"1")
    output.write("c1/items/i2/i2.json", b"2")
    output.delete("c1/items/i1/i1.json")
    assert f"{OUT}/c1/items/i1/i1.json" not in server.objects
    assert f"{OUT}/c1/items/i1" not in server.collections
    assert f"{OUT}/c1/items" in server.collections
    output.delete("c1/items/i2/i2.json")
    assert f"{OUT}/c1" not in server.collections
    assert OUT in server.collections
    output.delete("never-there.json")  # nothing to do, no error


# -- public read -------------------------------------------------------------------------------


def test_public_read_is_set_on_the_output_only_with_inheritance(server, output):
    server.add_object(f"{SOURCE}/a.tif", b"data")
    output.write("old.json", b"{}")
    source_acl, home_acl = server.acl(SOURCE), server.acl(HOME)
    assert output.ensure_public_read() is True
    sets = server.calls("set_acl")
    assert [(a.access_name, a.path, a.user_name, a.user_zone, r) for a, r in sets] == [
        ("read", OUT, "anonymous", "iplant", True),
        ("inherit", OUT, "", "", True),
    ]
    assert server.acl(SOURCE) == source_acl and server.acl(HOME) == home_acl
    assert server.acl(OUT)[("anonymous", "iplant")] == "read_object"
    assert server.inherits(OUT)
    anonymous = server.client("anonymous")
    output.write("later/new.json", b"new")  # made after: public through inheritance
    for path in ("old.json", "later/new.json"):
        with anonymous.open(f"{OUT}/{path}") as stream:
            assert stream.read()
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        anonymous.open(f"{SOURCE}/a.tif")


def test_public_read_already_set_makes_no_call(server, output):
    assert output.ensure_public_read() is True
    before = len(server.calls("set_acl"))
    assert output.ensure_public_read() is False
    assert len(server.calls("set_acl")) == before
    assert server.calls("get_acls")[-1] == (OUT,)


def test_public_read_without_inheritance_sets_both(server, output):
    server.grant(OUT, "anonymous", "read")
    assert output.ensure_public_read() is True
    assert [a.access_name for a, _ in server.calls("set_acl")] == ["read", "inherit"]


def test_public_read_with_inheritance_but_no_read_sets_read_only(server, output):
    server.collections[OUT].inherit = True
    assert output.ensure_public_read() is True
    assert [a.access_name for a, _ in server.calls("set_acl")] == ["read"]


def test_make_public_does_what_the_irods_settings_ask(server, output):
    def settings(**irods):
        return SimpleNamespace(irods=IrodsSettings(**irods))

    output.make_public(settings(public_read=False))
    assert server.calls("get_acls") == [] and server.calls("set_acl") == []

    output.make_public(settings(public_user="bob", public_zone="iplant"))
    granted = [(a.access_name, a.user_name, a.user_zone) for a, _ in server.calls("set_acl")]
    assert granted == [("read", "bob", "iplant"), ("inherit", "", "")]

    output.make_public(settings())  # no zone given: the output collection's own (iplant)
    assert server.acl(OUT)[("anonymous", "iplant")] == "read_object"
    sets = len(server.calls("set_acl"))
    output.make_public(settings())  # already open: looked at, nothing set
    assert len(server.calls("set_acl")) == sets


def test_public_read_refused_is_an_output_error(server):
    server.collections["/iplant/home/bob/pub"] = server.collections["/iplant/home/bob"].__class__(
        {("bob", "iplant"): "own", ("alice", "iplant"): "modify_object"}
    )
    with pytest.raises(OutputError, match="cannot open to anonymous#iplant: permission denied"):
        ensure_public_read(server.client("alice"), "/iplant/home/bob/pub")


# -- a keeper's parent catalog ---------------------------------------------------------------


def keeper_catalog(server: FakeIrodsServer, alice_on_file: str = "own") -> str:
    path = "/iplant/home/bob/pub/catalog.json"
    server.add_object(path, b'{"links": []}', owner="bob")
    server.grant("/iplant/home/bob/pub", "alice", "write")
    server.grant(path, "alice", alice_on_file)
    server.grant(path, "anonymous", "read")
    return path


def test_parent_store_replaces_the_keepers_file_and_keeps_its_acls(server, output):
    path = keeper_catalog(server)
    store = IrodsParentStore(output.client)
    assert store.read(path) == b'{"links": []}'
    store.write(path, b'{"links": [1]}')
    assert server.data(path) == b'{"links": [1]}'
    acl = server.acl(path)
    assert acl[("anonymous", "iplant")] == "read_object" and acl[("bob", "iplant")] == "own"
    assert set(server.visible(path)) <= {b'{"links": []}', None, b'{"links": [1]}'}
    assert temp_objects(server) == []


def test_parent_store_without_permission_leaves_the_file_alone(server, output):
    path = keeper_catalog(server)
    server.grant("/iplant/home/bob/pub", "alice", "null")
    with pytest.raises(PermissionError):
        IrodsParentStore(output.client).write(path, b"new")
    assert server.data(path) == b'{"links": []}'
    assert temp_objects(server) == []
    with pytest.raises(FileNotFoundError):
        IrodsParentStore(output.client).read("/iplant/home/bob/pub/missing.json")
