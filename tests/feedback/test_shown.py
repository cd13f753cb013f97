"""Outside text on the service's pages: markup as text, acting characters as escapes, the
whole isolated in a ``<bdi>``."""

from intelmq_nsm.feedback.shown import shown, shown_text


def test_markup_controls_and_bidi_overrides_are_shown_not_acted_on():
    value = '<b onclick="x">Gemeente</b>\u202eexe.pdf\x1b[2J\u2066'
    assert str(shown(value)) == (
        "<bdi>&lt;b onclick=&#34;x&#34;&gt;Gemeente&lt;/b&gt;"
        '<span class="control">\\u202e</span>exe.pdf<span class="control">\\x1b</span>[2J'
        '<span class="control">\\u2066</span></bdi>'
    )
    assert shown_text(value) == '<b onclick="x">Gemeente</b>\\u202eexe.pdf\\x1b[2J\\u2066'


def test_right_to_left_text_and_white_space_stay_as_they_are():
    assert str(shown("مدينة\tتجربة\nسطر")) == "<bdi>مدينة\tتجربة\nسطر</bdi>"
    assert str(shown(None)) == "" and str(shown(42)) == "<bdi>42</bdi>"
