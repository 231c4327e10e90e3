"""One test per title-normalisation class (issue 14)."""

from __future__ import annotations

import pytest

from sona.ingest.titles import display_title, is_marker, match_key, numbers_of, title_forms


@pytest.mark.parametrize("title", [
    "Alien [Widescreen]", "Alien - Criterion Collection", "Alien [Uncut Version]",
    "Alien (25th Anniversary Edition) [HD]", "Alien: Director's Cut", "Alien | Full Movie",
    "Alien (Digitally Remastered)", "Alien – Special Collector's Edition", "Alien (Blu-ray)",
    "Alien (1979)", "Alien: The Ultimate Cut", "Alien (Extnded Edition)",  # one typo allowed
])
def test_edition_and_format_markers_by_pattern(title):
    assert match_key(title) == "alien"
    assert display_title(title) == "Alien"


def test_a_subtitle_is_not_a_marker():
    assert not is_marker("First Contact") and not is_marker("The Final Chapter")
    assert match_key("Star Trek: First Contact") == "star trek first contact"


def test_bracketed_alternative_titles_are_kept_as_aliases():
    hate = title_forms("Hate (Haine, La)")
    assert (hate.key, hate.aliases) == ("hate", ("la haine",))
    assert match_key("La Haine") in hate.keys
    seven = title_forms("Seven (Se7en)")
    assert seven.keys == ("7", "se7en")
    roof = title_forms("Horseman on the Roof, The (Hussard sur le toit, Le)")
    assert roof.keys == ("horseman on the roof", "le hussard sur le toit")


def test_dropped_subtitle_head_with_sequel_guard():
    assert title_forms("Terminator 2: Judgment Day").head == match_key("Terminator 2")
    assert title_forms("Kill Bill: Vol. 2").head is None  # the subtitle names the sequel
    assert title_forms("Alien: Part II").head is None
    assert title_forms("Alien").head is None


@pytest.mark.parametrize(("a", "b"), [
    ("Wallace & Gromit", "Wallace and Gromit"), ("Romeo + Juliet", "Romeo and Juliet")])
def test_ampersand_reads_and(a, b):
    assert match_key(a) == match_key(b)


@pytest.mark.parametrize(("title", "key"), [
    ("M*A*S*H", "mash"), ("L.A. Confidential", "la confidential"),
    ("Schindler's List", "schindlers list"), ("Schindler’s List", "schindlers list"),
    ("Spider-Man", "spider man")])
def test_symbols_inside_titles(title, key):
    assert match_key(title) == key


@pytest.mark.parametrize(("a", "b"), [
    ("Rocky III", "Rocky 3"), ("Three Colors: Blue", "3 Colors: Blue"),
    ("Alien: Part II", "Alien: Part 2"), ("Seven", "7")])
def test_number_words_and_roman_numerals(a, b):
    assert match_key(a) == match_key(b)


def test_single_letter_numerals_stay_letters_and_digits_are_exposed():
    assert match_key("Malcolm X") == "malcolm x" and match_key("V for Vendetta") == "v for vendetta"
    assert numbers_of(match_key("Die Hard 2")) == ("2",) and numbers_of("die hard") == ()


def test_articles_and_accents():
    assert match_key("Matrix, The") == match_key("The Matrix") == "matrix"
    assert match_key("Amélie") == "amelie"
    assert match_key("Last Klezmer: His Life, The - Uncut") == "last klezmer his life"
