"""Wildcards via dynamicprompts: seeding, syntax, safety, errors, file management."""

import pytest

from webui.engine.prompts.wildcards import WildcardError, WildcardExpander


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "wildcards"
    (root / "animals").mkdir(parents=True)
    (root / "colors.txt").write_text("red\ngreen\nblue\n# a comment line\nyellow\n", encoding="utf-8")
    (root / "animals" / "cats.txt").write_text("tabby\nsiamese\nsphynx\n", encoding="utf-8")
    (root / "style.txt").write_text("<lora:detail:0.8> (sharp:1.2) [day:night:0.5]\n", encoding="utf-8")
    (root / "nested.txt").write_text("__colors__ __animals/cats__\n", encoding="utf-8")
    (root / "loop.txt").write_text("again __loop__\n", encoding="utf-8")
    (root / "ping.txt").write_text("__pong__\n", encoding="utf-8")
    (root / "pong.txt").write_text("__ping__\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("TOP SECRET\n", encoding="utf-8")
    return root


@pytest.fixture
def wc(folder):
    return WildcardExpander(folder)


COLORS = {"red", "green", "blue", "yellow"}
CATS = {"tabby", "siamese", "sphynx"}


def test_same_seed_same_prompt(wc):
    template = "a __colors__ {cat|dog|bird} in __animals/cats__ style"
    assert [wc.expand(template, 1234) for _ in range(3)] == [wc.expand(template, 1234)] * 3
    assert WildcardExpander(wc.folder).expand(template, 1234) == wc.expand(template, 1234)


def test_seeds_give_different_prompts(wc):
    template = "__colors__ __animals/cats__ {a|b|c|d}"
    results = {wc.expand(template, seed) for seed in range(40)}
    assert len(results) > 10
    for result in results:
        color, cat, letter = result.split(" ")
        assert color in COLORS and cat in CATS and letter in "abcd"
    assert wc.expand_batch(template, [5, 6]) == [wc.expand(template, 5), wc.expand(template, 6)]


def test_variant_syntax(wc):
    for seed in range(20):
        assert wc.expand("{0.001::never|always}", seed) == "always"
        two = wc.expand("{2$$a|b|c}", seed).split(",")
        assert len(two) == 2 and len(set(two)) == 2 and set(two) <= {"a", "b", "c"}
        assert wc.expand("x {a|{b|c}} y", seed) in {"x a y", "x b y", "x c y"}
        color, cat = wc.expand("__nested__", seed).split(" ")
        assert color in COLORS and cat in CATS
    assert "# a comment line" not in {wc.expand("__colors__", s) for s in range(50)}


def test_a1111_syntax_passes_through(wc):
    template = "a (photo:1.2) of [cat|dog], [red:blue:0.5] <lora:foo:0.7> BREAK x"
    assert wc.expand(template, 3) == template
    assert wc.expand("__style__ {a}", 7) == "<lora:detail:0.8> (sharp:1.2) [day:night:0.5] a"


@pytest.mark.parametrize(
    "name", ["__../secret__", "__../../secret__", "__animals/../../secret__", "__/etc/passwd__", "__..\\secret__"]
)
def test_names_cannot_leave_the_folder(wc, name):
    with pytest.raises(WildcardError, match="Invalid wildcard name"):
        wc.expand(f"a {name} b", 1)


def test_absolute_path_is_not_read(wc, tmp_path):
    with pytest.raises(WildcardError) as err:
        wc.expand(f"__{tmp_path / 'secret'}__", 1)
    assert "TOP SECRET" not in str(err.value)


def test_missing_wildcard_message(wc):
    with pytest.raises(WildcardError, match=r"Wildcard __nothere__ not found"):
        wc.expand("a __nothere__ b", 1)
    with pytest.raises(WildcardError, match=r"__animals/dogs__ not found"):
        wc.expand("{2$$__animals/dogs__}", 1)


def test_recursion_loop_is_an_error(wc):
    with pytest.raises(WildcardError, match="__loop__ includes itself"):
        wc.expand("x __loop__", 1)
    with pytest.raises(WildcardError, match="includes itself"):
        wc.expand("__ping__", 1)


def test_syntax_error_is_an_error(wc):
    with pytest.raises(WildcardError, match="Cannot expand wildcards"):
        wc.expand("a {b|c", 1)


def test_combinations_capped(wc):
    assert wc.combinations("{a|b} {c|d}", 10) == ["a c", "a d", "b c", "b d"]
    assert len(wc.combinations("{a|b|c} __colors__", 5)) == 5
    assert len(wc.combinations("{a|b|c} __colors__", 100)) == 12
    assert len(WildcardExpander(wc.folder, max_combinations=3).combinations("{a|b|c} __colors__", 100)) == 3
    assert wc.combinations("plain", 5) == ["plain"]


def test_files(wc, folder):
    assert wc.list_files() == ["animals/cats", "colors", "loop", "nested", "ping", "pong", "style"]
    assert wc.read("animals/cats").splitlines() == ["tabby", "siamese", "sphynx"]
    wc.write("animals/dogs", "pug\nbeagle\n")
    assert (folder / "animals" / "dogs.txt").read_text(encoding="utf-8") == "pug\nbeagle\n"
    assert wc.expand("__animals/dogs__", 1) in {"pug", "beagle"}  # new files are seen at once
    wc.write("colors", "black\n")
    assert wc.expand("__colors__", 1) == "black"  # edits too
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
    wc.delete("animals/dogs")
    assert "animals/dogs" not in wc.list_files()
    for bad in ["../evil", "/tmp/evil", "a/../../evil", ""]:
        with pytest.raises(WildcardError):
            wc.write(bad, "x")
    with pytest.raises(WildcardError):
        wc.read("../secret")
    with pytest.raises(WildcardError, match="not found"):
        wc.read("nothere")


def test_symlink_out_of_folder_is_refused_for_files(wc, folder, tmp_path):
    (folder / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(WildcardError, match="outside"):
        wc.read("link")
