"""Numbers on pages are rounded for reading, the same way everywhere."""

import pytest

from sitegen.numfmt import readable


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (10726.857838, "10,727"),  # llama-bench's raw tokens/s as imported
        (94.6123, "94.6"),
        (0.31347, "0.313"),
        (0.0004, "0.0004"),
        (1234567, "1,234,567"),
        (150.0, "150"),
        (-3.14159, "-3.14"),
        (0.0, "0"),
        (None, "–"),
    ],
)
def test_readable_keeps_three_significant_digits_and_separates_thousands(value, shown):
    assert readable(value) == shown


def test_the_theme_offers_it_as_a_filter(tmp_path):
    from sitegen.pages.theme import environment

    env = environment(tmp_path / "templates")
    assert env.from_string("{{ 10726.857838 | readable }}").render() == "10,727"
