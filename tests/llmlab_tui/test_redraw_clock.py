"""The Monitor's chart pacing: redraws back off while the app's CPU share is above its budget and
come back to once a second when it falls."""

from llmlab_tui.redraw_clock import RedrawClock


class Clocks:
    """A wall clock and a CPU clock the test moves by hand."""

    def __init__(self):
        self.wall, self.cpu = 0.0, 0.0


def clock_on(clocks: Clocks) -> RedrawClock:
    return RedrawClock(fastest=1.0, slowest=8.0, share=0.03, clock=lambda: clocks.wall, cpu=lambda: clocks.cpu)


def draw_after(clock: RedrawClock, clocks: Clocks, seconds: float, cpu_seconds: float) -> None:
    clocks.wall += seconds
    clocks.cpu += cpu_seconds
    assert clock.due()
    clock.drawn()


def test_the_first_draw_is_due_at_once_and_the_next_after_the_interval():
    clocks = Clocks()
    clock = clock_on(clocks)
    assert clock.due()
    clock.drawn()
    clocks.wall += 0.5
    assert not clock.due()
    clocks.wall += 0.5
    assert clock.due()


def test_an_expensive_app_backs_off_to_the_slowest_and_a_cheap_one_comes_back():
    clocks = Clocks()
    clock = clock_on(clocks)
    clock.drawn()
    intervals = []
    for _ in range(5):  # 10 % of a core: over the 3 % budget
        draw_after(clock, clocks, clock.interval, 0.1 * clock.interval)
        intervals.append(clock.interval)
    assert intervals == [2.0, 4.0, 8.0, 8.0, 8.0]
    draw_after(clock, clocks, clock.interval, 0.02 * clock.interval)  # within budget: stays
    assert clock.interval == 8.0
    for expected in (4.0, 2.0, 1.0, 1.0):  # 1 %: under half the budget
        draw_after(clock, clocks, clock.interval, 0.01 * clock.interval)
        assert clock.interval == expected


def test_now_makes_a_redraw_due_without_waiting():
    clocks = Clocks()
    clock = clock_on(clocks)
    clock.drawn()
    assert not clock.due()
    clock.now()
    assert clock.due()
