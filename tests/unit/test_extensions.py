"""Extension discovery, hook order, failure isolation, persisted enable/disable, URL installs refused when exposed."""
import textwrap

import pytest

from webui.extensions import ExtensionManager, ImageContext


def write_ext(folder, name, body, entry="extension.py"):
    d = folder / name
    d.mkdir(parents=True)
    (d / entry).write_text(textwrap.dedent(body))
    return d


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "extensions"


def manager(folder):
    m = ExtensionManager(folder, folder.parent / "state.json")
    m.discover()
    return m


def test_hooks_run_in_order_of_priority_then_name(folder):
    write_ext(folder, "b-ext", """
        def register(ext):
            ext.prompt_transform(lambda p, n, r: (p + " b", n), order=5)
    """)
    write_ext(folder, "a-ext", """
        def register(ext):
            ext.prompt_transform(lambda p, n, r: (p + " a", n), order=5)
            ext.prompt_transform(lambda p, n, r: (p + " first", n + "!"), order=-1)
    """)
    m = manager(folder)
    assert m.hooks.transform_prompts("x", "", None) == ("x first a b", "!")


def test_broken_extensions_are_disabled_with_a_message_and_others_keep_working(folder):
    write_ext(folder, "syntax-error", "def register(ext) oops\n")
    write_ext(folder, "no-register", "X = 1\n")
    write_ext(folder, "raises", """
        def register(ext):
            def bad(image, ctx):
                raise RuntimeError("boom")
            ext.image_postprocess(bad)
    """)
    write_ext(folder, "good", """
        def register(ext):
            ext.image_postprocess(lambda image, ctx: image + 1)
            ext.infotext_fields(lambda req: {"Good": "yes"})
    """, entry="__init__.py")
    m = manager(folder)
    assert "failed to load" in m.extensions["syntax-error"].error
    assert "register" in m.extensions["no-register"].error
    ctx = ImageContext(None, 0, 1, "p", "n", {})
    assert m.hooks.postprocess_image(1, ctx) == 2  # 'raises' failed, 'good' still ran
    assert "boom" in m.extensions["raises"].error and not m.extensions["raises"].active
    assert m.hooks.postprocess_image(1, ctx) == 2
    assert m.hooks.infotext_params(None) == {"Good": "yes"}
    assert any("raises" in msg and "boom" in msg for msg in m.messages)


def test_enable_state_and_settings_persist(folder):
    write_ext(folder, "cfg", """
        def register(ext):
            ext.setting("level", 3, "Level")
            ext.request_transform(lambda req: req * ext.get("level"))
    """)
    m = manager(folder)
    assert m.hooks.transform_request(2) == 6
    m.update_settings("cfg", {"level": 5})
    m.set_enabled("cfg", False)
    assert m.hooks.transform_request(2) == 2  # disabled at once
    m2 = manager(folder)
    assert not m2.extensions["cfg"].enabled and m2.hooks.transform_request(2) == 2
    m2.set_enabled("cfg", True)
    m3 = manager(folder)
    assert m3.hooks.transform_request(2) == 10  # saved setting used


def test_url_install_refused_when_exposed(folder):
    m = manager(folder)
    with pytest.raises(PermissionError, match="--listen or --share"):
        m.install_from_url("https://example.org/someone/ext.git", exposed=True)
    with pytest.raises(ValueError, match="not an https git URL"):
        m.install_from_url("file:///etc/passwd", exposed=False)
