"""Which local image is a node's own build: never an intermediate or a child carrying the inherited label."""
from builder.adapters.engine import ImageInfo, unix_to_iso
from builder.cache.identity import is_own_build, own_build, own_tag

H = "ab" * 32
OTHER = "cd" * 32


def image(tags=(), label=H, created=0, id="sha256:1"):
    return ImageInfo(id, tuple(tags), {"io.stacks.hash": label} if label else {}, 10, unix_to_iso(created))


def test_own_tag_under_any_prefix():
    assert own_tag(f"stacks/debian-bookworm:{H[:12]}", "debian-bookworm", H)
    assert own_tag(f"other-prefix/debian-bookworm:{H[:12]}", "debian-bookworm", H)
    assert own_tag(f"127.0.0.1:5000/cache/debian-bookworm:{H[:12]}", "debian-bookworm", H)


def test_own_tag_refuses_other_names_hashes_and_moving_tags():
    assert not own_tag(f"stacks/lab:{H[:12]}", "debian-bookworm", H)
    assert not own_tag(f"stacks/debian-bookworm:{OTHER[:12]}", "debian-bookworm", H)
    assert not own_tag("stacks/debian-bookworm:latest", "debian-bookworm", H)
    assert not own_tag(f"debian-bookworm:{H[:12]}", "debian-bookworm", H)  # no prefix: not a stacks tag
    assert not own_tag(f"stacks/x-debian-bookworm:{H[:12]}", "debian-bookworm", H)


def test_untagged_intermediate_with_the_label_is_not_the_build():
    """The classic builder's intermediates before the LABEL step carry the parent's hash and no tag."""
    assert not is_own_build(image(tags=()), "debian-bookworm", H)


def test_foreign_child_with_inherited_label_is_not_the_build():
    assert not is_own_build(image(tags=("myorg/custom:latest", f"stacks/lab:{OTHER[:12]}")), "debian-bookworm", H)


def test_tagged_build_with_another_label_is_not_the_build():
    assert not is_own_build(image(tags=(f"stacks/debian-bookworm:{H[:12]}",), label=OTHER), "debian-bookworm", H)


def test_cache_reference_proves_the_build():
    ref = "127.0.0.1:5000/cache:debian-bookworm-" + H
    assert is_own_build(image(tags=(ref,)), "debian-bookworm", H, cache_refs=[ref])
    assert not is_own_build(image(tags=(ref,)), "debian-bookworm", H)


def test_own_build_prefers_this_runs_reference_then_the_newest():
    local = f"stacks/base:{H[:12]}"
    here = image(tags=(local,), id="sha256:here")
    elsewhere_old = image(tags=(f"a/base:{H[:12]}",), created=1, id="sha256:old")
    elsewhere_new = image(tags=(f"b/base:{H[:12]}",), created=2, id="sha256:new")
    intermediate = image(created=3, id="sha256:mid")
    assert own_build([elsewhere_new, here, intermediate], "base", H, local) is here
    assert own_build([elsewhere_old, elsewhere_new, intermediate], "base", H, local) is elsewhere_new
    assert own_build([intermediate], "base", H, local) is None


def test_listing_row_drops_none_tags():
    row = {"Id": "sha256:x", "RepoTags": ["<none>:<none>"], "Labels": None, "Size": 5, "Created": 7}
    assert ImageInfo.from_listing(row) == ImageInfo("sha256:x", (), {}, 5, "1970-01-01T00:00:07Z")
