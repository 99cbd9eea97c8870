"""The game-day flow without its crash and cancellation hooks: only the reaper can clean up.

Deployed by the tests as ``game-day/unhooked``; the flow keeps its name, so the reaper's
automations watch it like any game day.
"""

from flows.game_day import game_day

game_day_unhooked = game_day.with_options()
# ``with_options`` keeps the hooks when given empty lists, so they are emptied here.
game_day_unhooked.on_crashed_hooks = []
game_day_unhooked.on_cancellation_hooks = []
