"""The Guest limits page's shaping (dashboard/bulk_view.py): the picker's ticks across
redraws, and the captions saying where the selected grants come from."""

from __future__ import annotations

from dashboard.bulk_view import DrawnTable, sources_caption, table_to_draw, ticked_caption, ticks_of


def test_ticks_keep_the_picked_grants_off_the_table_and_follow_the_rows_on_it() -> None:
    table = DrawnTable(0, ("g1", "g2", "g3"), (0,))
    assert ticks_of(table, None, ["g1", "g9"]) == ["g1", "g9"]  # no click yet: as drawn
    assert ticks_of(table, [1, 2], ["g1", "g9"]) == ["g9", "g2", "g3"]  # g1 unticked
    assert ticks_of(table, [7], ["g9"]) == ["g9"]  # a row the table no longer has


def test_new_rows_fold_the_old_tables_ticks_by_grant_id_into_the_next_generation() -> None:
    first, picked = table_to_draw(0, None, ["g1", "g2"], [], lambda gen: None)
    assert first == DrawnTable(0, ("g1", "g2"), ()) and picked == []
    same, picked = table_to_draw(0, first, ["g1", "g2"], [], lambda gen: [1])
    assert same is first and picked == []  # the same rows: the table (and its clicks) stays
    # A filter shows other rows: the click on row 1 (g2) is kept by id, not by row.
    asked: list[int] = []
    nxt, picked = table_to_draw(0, first, ["g3", "g2"], [],
                                lambda gen: asked.append(gen) or [1])
    assert asked == [0] and picked == ["g2"]
    assert nxt == DrawnTable(1, ("g3", "g2"), (1,))


def test_the_captions_say_how_many_are_hidden_and_counted_twice() -> None:
    assert ticked_caption([], ["g1"]) is None
    assert ticked_caption(["g1", "g5"], ["g1"]) == (
        "2 grant(s) ticked in the table, 1 of them hidden by the filter.")
    assert sources_caption(["g1"], [], [], ["g1"]) is None
    assert sources_caption(["g1", "g2"], ["g2"], [], ["g1", "g2"]) == (
        "2 ticked + 1 from the file, 1 in both.")
    assert sources_caption(["g1"], ["g2"], ["g3"], ["g1", "g2", "g3"]) == (
        "1 ticked + 1 from the file + 1 matching the filter, none in more than one.")
