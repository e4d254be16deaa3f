"""styles.csv: A1111 file format, CRUD with atomic writes, applying styles."""

import pytest

from webui.engine.prompts.styles import PromptStyle, StyleError, StyleStore, merge_prompts

A1111_CSV = (
    "\ufeffname,prompt,negative_prompt\r\n"
    '"Cinematic","{prompt}, cinematic, film grain","cartoon, drawing"\r\n'
    '# section,,\r\n'
    'Sharp,"sharp focus, (detailed:1.2)",blurry\r\n'
    'Empty,,\r\n'
)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_bytes(A1111_CSV.encode("utf-8"))
    return StyleStore(path)


def test_reads_a1111_file(store):
    assert store.list() == [
        PromptStyle("Cinematic", "{prompt}, cinematic, film grain", "cartoon, drawing"),
        PromptStyle("Sharp", "sharp focus, (detailed:1.2)", "blurry"),
        PromptStyle("Empty", "", ""),
    ]


def test_old_name_text_header(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text("name,text\nOld,oil painting\n", encoding="utf-8")
    assert StyleStore(path).get("Old") == PromptStyle("Old", "oil painting", "")


def test_merge_rule():
    assert merge_prompts("{prompt}, cinematic", "a cat") == "a cat, cinematic"
    assert merge_prompts("x {prompt} y {prompt}", "c") == "x c y c"
    assert merge_prompts("  sharp  ", " a cat ") == "a cat, sharp"  # both stripped, joined with ", "
    assert merge_prompts("sharp", "") == "sharp"
    assert merge_prompts("", " a cat ") == "a cat"


def test_apply_several_in_order(store):
    prompt, negative = store.apply("a cat", "ugly", ["Sharp", "Cinematic"])
    assert prompt == "a cat, sharp focus, (detailed:1.2), cinematic, film grain"
    assert negative == "ugly, blurry, cartoon, drawing"
    prompt, negative = store.apply("a cat", "", ["Cinematic", "Sharp"])
    assert prompt == "a cat, cinematic, film grain, sharp focus, (detailed:1.2)"
    assert negative == "cartoon, drawing, blurry"
    assert store.apply("a", "b", []) == ("a", "b")
    assert store.apply("a", "b", ["Empty"]) == ("a", "b")


def test_unknown_style_is_an_error(store):
    with pytest.raises(StyleError, match="Unknown style.*'Nope'"):
        store.apply("a", "b", ["Sharp", "Nope"])
    with pytest.raises(StyleError):
        store.get("Nope")


def test_crud_round_trip_keeps_a1111_format(store, tmp_path):
    store.create("New, style", 'with "quotes", commas', "neg")
    store.update("Sharp", prompt="very sharp")
    store.update("Empty", new_name="Renamed", negative_prompt="n")
    store.delete("Cinematic")
    raw = (tmp_path / "styles.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfname,prompt,negative_prompt\r\n")  # BOM + header, like A1111
    fresh = StyleStore(tmp_path / "styles.csv")
    assert fresh.list() == [
        PromptStyle("Sharp", "very sharp", "blurry"),
        PromptStyle("Renamed", "", "n"),
        PromptStyle("New, style", 'with "quotes", commas', "neg"),
    ]
    assert b"# section" in raw  # comment rows survive a rewrite
    assert (tmp_path / "styles.csv.bak").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left over


def test_create_errors(store):
    with pytest.raises(StyleError, match="already exists"):
        store.create("Sharp")
    with pytest.raises(StyleError):
        store.create("  ")
    with pytest.raises(StyleError):
        store.update("Nope", prompt="x")
    with pytest.raises(StyleError):
        store.delete("Nope")
    with pytest.raises(StyleError, match="already exists"):
        store.update("Sharp", new_name="Cinematic")


def test_missing_file_then_first_write(tmp_path):
    store = StyleStore(tmp_path / "sub" / "styles.csv")
    assert store.list() == []
    store.save(PromptStyle("A", "a", ""))
    store.save(PromptStyle("A", "b", "c"))
    assert StyleStore(tmp_path / "sub" / "styles.csv").list() == [PromptStyle("A", "b", "c")]


def test_sees_hand_edits(store, tmp_path):
    assert "Hand" not in store
    path = tmp_path / "styles.csv"
    path.write_text(path.read_text(encoding="utf-8-sig") + "Hand,made,\n", encoding="utf-8-sig")
    assert store.get("Hand") == PromptStyle("Hand", "made", "")
