"""Which local image is a node's own build, and not a descendant or an intermediate of it.

Labels are inherited: an image built `FROM` a stacks image, and every
intermediate image of the classic builder before its own LABEL step, carries
the parent's `io.stacks.hash`. A label alone therefore proves nothing. What
stacks writes only after a successful build of node N with hash H is a tag
`<prefix>/N:<H[:12]>` (under whatever `local_prefix` that run had; for a
platform other than the engine's, `<prefix>/N:<platform slug>-<H[:12]>`) or the
registry cache's tag for H; an image is N's own build when it carries the
label H *and* one of those tags. Untagged intermediates and foreign children
(tagged under their own names) never qualify.
"""
from __future__ import annotations

from collections.abc import Iterable

from builder.adapters.engine import ImageInfo
from builder.plan.plan import HASH_LABEL
from builder.reference import ImageRef, InvalidReference


def own_tag(tag: str, name: str, content_hash: str) -> bool:
    """`tag` is `<any prefix>/<name>:[<platform slug>-]<hash[:12]>`: the content-addressed tag of a successful
    build of `name` (the hash covers the platform, so the slug needs no check of its own)."""
    try:
        ref = ImageRef.parse(tag)
    except InvalidReference:
        return False
    short = content_hash[:12]
    return ((ref.tag == short or (ref.tag or "").endswith(f"-{short}")) and ref.digest is None and ref.basename == name
            and "/" in ref.familiar_name)  # an official-image name (`name:hash`) has no prefix: not a stacks tag


def is_own_build(image: ImageInfo, name: str, content_hash: str, cache_refs: Iterable[str] = ()) -> bool:
    """The image is node `name`'s own build of `content_hash` (see the module docstring)."""
    if image.labels.get(HASH_LABEL) != content_hash:
        return False
    cached = set(cache_refs)
    return any(own_tag(t, name, content_hash) or t in cached for t in image.tags)


def own_build(images: Iterable[ImageInfo], name: str, content_hash: str, local_ref: str,
              cache_refs: Iterable[str] = ()) -> ImageInfo | None:
    """The node's own image among `images`: the one under `local_ref` first, else one under another prefix."""
    refs = tuple(cache_refs)
    mine = [i for i in images if is_own_build(i, name, content_hash, refs)]
    return next((i for i in mine if local_ref in i.tags), None) or max(mine, key=lambda i: i.created, default=None)
